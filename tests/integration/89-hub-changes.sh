#!/usr/bin/env bash
# The hub tells a terminal's daemon when another terminal brought changes
# (HubChanges on the control connection): the daemon raises the notice
# "the hub has changes not fetched here", logged, and a download clears it.
. "$(dirname "$0")/lib.sh"

DAEMON=
trap '[ -n "$DAEMON" ] && { kill "$DAEMON"; wait "$DAEMON"; } 2>/dev/null; cleanup' EXIT
wait_for() {
    local tries=$(($1 * 10)); shift
    for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.1; done
    return 1
}
connected() { grep -q "terminal imei-B connected for backup requests" "$T/hub.log"; }
noticed() { ss --home "$T/B" notices 2>/dev/null | grep -q "the hub has changes from another terminal"; }
logged() { ss --home "$T/B" log 2>/dev/null | grep -q "the hub has changes not fetched here"; }

start_hub
new_sim sim 44123000960
for t in A B; do new_terminal $t; insert $t sim; register $t; done
for k in "sync.on_start off" "sync.every_seconds 0" "sync.after_update off"; do
    ss --home "$T/B" policy set $k >/dev/null || fail "policy set $k"
done
"$SIMSYNC" --home "$T/B" daemon >"$T/B.daemon" 2>&1 &
DAEMON=$!
wait_for 20 connected || fail "B's daemon did not connect: $(cat "$T/B.daemon")"
noticed && fail "a notice before any change"

put A contacts ana.vcf "BEGIN:VCARD ana"
sync_ok A
wait_for 20 noticed || fail "no notice on B: $(ss --home "$T/B" notices; cat "$T/B.daemon")"
wait_for 10 logged || fail "not in B's log: $(ss --home "$T/B" log)"
[ ! -e "$T/B/data/contacts/ana.vcf" ] || fail "B downloaded although no trigger asked"
ok "A's sync reached B's daemon as a notice, logged"

ss --home "$T/B" policy run download >/dev/null || fail "policy run download"
wait_for 20 test -e "$T/B/data/contacts/ana.vcf" || fail "the download did not bring A's edit"
ok "a download brings the announced change"

# With download.on_hub_changes on, the announcement itself downloads.
ss --home "$T/B" policy set download.on_hub_changes on >/dev/null || fail "policy set"
put A contacts cy.vcf "BEGIN:VCARD cy"
sync_ok A
wait_for 20 test -e "$T/B/data/contacts/cy.vcf" \
    || fail "no download on hub changes: $(ss --home "$T/B" log)"
ss --home "$T/B" log | grep -q "hub-changes" || fail "log: $(ss --home "$T/B" log)"
ok "download.on_hub_changes: another terminal's change arrives by itself (trigger hub-changes)"


# ------------------------------------------------------------ user activity
# The idle trigger waits for quiet data AND no input on the terminal
# devices (a fake /dev: touching a tty's access time is typing on it).
kill "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null; DAEMON=
mkdir -p "$T/dev/pts"; : >"$T/dev/tty1"; : >"$T/dev/pts/0"
for k in "sync.idle_seconds 3" "sync.on_start off"; do
    ss --home "$T/A" policy set $k >/dev/null || fail "policy set $k"
done
for k in "sync.every_seconds 0" "sync.after_update off"; do
    ss --home "$T/A" policy set $k >/dev/null || fail "policy set $k"
done
"$SIMSYNC" --home "$T/A" daemon --tty-dir "$T/dev" >"$T/A.daemon" 2>&1 &
DAEMON=$!
idle_sync() { ss --home "$T/A" --json log 2>/dev/null | grep -q '"kind":"done","action":"[a-z]*","trigger":"idle"'; }
put A contacts typing.vcf "BEGIN:VCARD typed"
for _ in $(seq 1 20); do touch -a "$T/dev/pts/0"; sleep 0.3; done
idle_sync && fail "the idle trigger fired while the user was typing: $(ss --home "$T/A" log)"
wait_for 20 idle_sync || fail "no idle sync after the typing stopped: $(ss --home "$T/A" log)"
ok "idle waits while the user types on a terminal (6 s of input), then syncs"
