#!/usr/bin/env bash
# The main job, on this machine: a hub and three terminals that share one
# SIM card (FIG 16 of the source patent). The SIM moves A -> B -> C -> A -> B;
# each terminal edits, uploads when the SIM leaves and downloads when it
# arrives. Then the hub backs A up on a schedule (A's daemon first says
# BUSY: battery low), and a new terminal D restores the generation.
# Prints what happened. Everything lives in a temporary folder (kept with
# --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0; [ "${1:-}" = "--keep" ] && keep=1
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target simsync_cli >/dev/null
S=$PWD/build/simsync
D=$(mktemp -d /tmp/simsync-demo.XXXXXX)
HUB_PID=
DAEMON_PID=
finish() {
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    [ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null && wait "$HUB_PID" 2>/dev/null
    if [ $keep = 1 ]; then echo "Files kept in $D"; else rm -rf "$D"; fi
}
trap finish EXIT
export SIMSYNC_PIN=1234 SIMSYNC_RECOVERY=demo-recovery-secret
say() { printf '\n== %s\n' "$*"; }
run() { printf '$ simsync %s\n' "$*"; "$S" "$@"; }

say "A hub on 127.0.0.1 (it only ever sees ciphertext)"
"$S" --home "$D/hub" init --role hub >/dev/null
HUB_ID=$("$S" --home "$D/hub" id)
"$S" --home "$D/hub" hub serve --listen 127.0.0.1:0 2>"$D/hub.log" &
HUB_PID=$!
for _ in $(seq 1 100); do
    ADDR=$(sed -n 's/^hub: listening on //p' "$D/hub.log" | head -n1)
    [ -n "$ADDR" ] && break; sleep 0.05
done
echo "hub $HUB_ID listening on $ADDR"

say "One SIM card, three terminals bound to its subscriber"
run sim create "$D/card.sim" --subscriber 440101234567890 --pin 1234 --puk 12345678
for t in A B C; do
    "$S" --home "$D/$t" init --role terminal --terminal-id "35-000000-00000$t" >/dev/null
    "$S" --home "$D/$t" sim insert "$D/card.sim"
    SIMSYNC_PASSWORD="password-$t" "$S" --home "$D/$t" register \
        --hub "$ADDR" --hub-id "$HUB_ID" >/dev/null
    "$S" --home "$D/$t" sim remove
    echo "terminal $t registered (PIN checked by the SIM, password set)"
done

move() {   # move the SIM into terminal $1: download what others did
    "$S" --home "$D/$1" sim insert "$D/card.sim"
    printf 'SIM into %s: ' "$1"; "$S" --home "$D/$1" sync | head -n1
}
leave() {  # the SIM leaves terminal $1: upload its edits first
    printf 'SIM out of %s: ' "$1"; "$S" --home "$D/$1" sync | head -n1
    "$S" --home "$D/$1" sim remove
}
edit() { mkdir -p "$(dirname "$D/$1/data/$2")"; printf '%s\n' "$3" >"$D/$1/data/$2"; \
         echo "  $1 edits $2"; }

say "T1: the SIM is in A; A adds contact a1"
move A; edit A contacts/a1.vcf $'BEGIN:VCARD\nVERSION:3.0\nFN:Alice\nEND:VCARD'; leave A
say "T2: the SIM goes to B; a1 arrives; B adds calendar entry b1"
move B; edit B pim/b1.ics $'BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:Dentist\nEND:VEVENT\nEND:VCALENDAR'; leave B
say "T3: the SIM goes to C; a1 + b1 arrive; C adds bookmark c1"
move C; edit C browser/c1.url 'https://example.org/'; leave C
say "T4: back to A; A edits a1 (a2) and deletes bookmark c1"
move A; edit A contacts/a1.vcf $'BEGIN:VCARD\nVERSION:3.0\nFN:Alice Smith\nEND:VCARD'
rm "$D/A/data/browser/c1.url"; echo "  A deletes browser/c1.url"; leave A
say "T5: the SIM goes to B; b2 added there"
move B; edit B contacts/b2.vcf $'BEGIN:VCARD\nVERSION:3.0\nFN:Bob\nEND:VCARD'; leave B
say "Everyone catches up"
move C; leave C; move A; leave A

say "Result: the three terminals hold the same data"
for t in A B C; do
    printf '%s: ' "$t"; (cd "$D/$t/data" && find . -type f | sort | tr '\n' ' '); echo
done
if diff -r "$D/A/data" "$D/B/data" >/dev/null && diff -r "$D/A/data" "$D/C/data" >/dev/null; then
    echo "A, B and C are identical."
else
    echo "terminals differ"; exit 1
fi
if grep -rqa "Alice" "$D/hub"; then echo "plaintext found at the hub!"; exit 1; fi
echo "The hub's files contain no plaintext (grep for 'Alice' finds nothing)."
say "Status on A"
"$S" --home "$D/A" sim insert "$D/card.sim"; "$S" --home "$D/A" status

say "Backups the hub asks for: A's daemon answers BUSY while its battery is low"
mkdir -p "$D/power/BAT0"; echo Battery >"$D/power/BAT0/type"
echo 8 >"$D/power/BAT0/capacity"; echo Discharging >"$D/power/BAT0/status"
"$S" --home "$D/A" daemon --power-supply-dir "$D/power" --busy-after-edit 0 --retry-after 1 \
    2>"$D/daemon.log" &
DAEMON_PID=$!
run --home "$D/hub" hub schedule --subscriber 440101234567890 \
    --terminal 35-000000-00000A --every 2s --retry-interval 1s --max-attempts 5
for _ in $(seq 1 100); do
    grep -q BUSY "$D/daemon.log" && break; sleep 0.1
done
echo "  (the battery charges)"; echo 90 >"$D/power/BAT0/capacity"
for _ in $(seq 1 300); do
    "$S" --home "$D/A" --json backup history | grep -q '"event":"completed"' && break
    sleep 0.1
done
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=
"$S" --home "$D/hub" hub schedule --subscriber 440101234567890 \
    --terminal 35-000000-00000A --remove >/dev/null
sed 's/^/  /' "$D/daemon.log" | grep -v "control connection lost" || true
run --home "$D/A" backup history
run --home "$D/A" backup list

say "A new terminal D (recovery secret) restores generation 1"
"$S" --home "$D/A" sim remove
"$S" --home "$D/D" init --role terminal --terminal-id 35-000000-00000D >/dev/null
"$S" --home "$D/D" sim insert "$D/card.sim"
SIMSYNC_PASSWORD=password-D "$S" --home "$D/D" register --hub "$ADDR" \
    --hub-id "$HUB_ID" >/dev/null
run --home "$D/D" restore 1
files() { (cd "$D/$1/data" && find . -type f -exec sha256sum {} + | sort); }
if [ "$(files A)" = "$(files D)" ]; then
    echo "D holds exactly the files A backed up (same names, same bytes)."
else
    echo "D differs from A"; exit 1
fi
