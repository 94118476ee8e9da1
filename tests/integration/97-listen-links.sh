#!/usr/bin/env bash
# Link addresses and several listeners (issue 5 items 1 and 5): a desktop D
# serves its paired terminal T on two TCP listeners at once, with 'simsync
# listen ADDR...' and with 'simsync daemon --listen A --listen B'; T
# reaches it on both, with the plain HOST:PORT and the tcp: form. Malformed
# link addresses are usage errors (exit 2) with a reason, an unreachable
# RFCOMM peer is exit 4; RFCOMM itself is tested on a real kernel in
# tests/vm.
. "$(dirname "$0")/lib.sh"

BG=
stop_bg() {
    for p in $BG; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    BG=
}
trap 'stop_bg; cleanup' EXIT

wait_lines() { # wait_lines SECONDS FILE SED-SCRIPT COUNT: COUNT matches
    local out
    for _ in $(seq 1 $(($1 * 20))); do
        out=$(sed -n "$3" "$2" 2>/dev/null)
        [ "$(printf '%s' "$out" | grep -c .)" -ge "$4" ] && { echo "$out"; return 0; }
        sleep 0.05
    done
    return 1
}

start_hub
new_sim sim 440101234567890
ss --home "$T/D" init --role desktop --terminal-id desk-D >/dev/null || fail "init D"
new_terminal T
for t in D T; do insert $t sim; register $t; done

ss --home "$T/D" pair --listen tcp:127.0.0.1:0 --yes >"$T/pair-D.out" 2>&1 &
PAIR=$!
addr=$(wait_lines 10 "$T/pair-D.out" 's/^Waiting for the other node on \([0-9.]*:[0-9]*\): .*/\1/p' 1) \
    || { cat "$T/pair-D.out" >&2; fail "D did not wait"; }
ss --home "$T/T" pair --peer "tcp:$addr" --yes >"$T/pair-T.out" 2>&1 \
    || { cat "$T/pair-T.out" >&2; fail "T did not pair through tcp:$addr"; }
wait "$PAIR" || { cat "$T/pair-D.out" >&2; fail "D's side of the pairing failed"; }
ok "pairing through tcp: link addresses"

# ------------------------------------------------- simsync listen A B
"$SIMSYNC" --home "$T/D" listen 127.0.0.1:0 tcp:127.0.0.1:0 >"$T/listen.out" \
    2>"$T/listen.err" &
BG="$BG $!"
mapfile -t L < <(wait_lines 10 "$T/listen.out" 's/^Serving paired nodes on \(.*\)\.$/\1/p' 2) \
    || { cat "$T/listen.out" "$T/listen.err" >&2; fail "D did not listen twice"; }
[ "${#L[@]}" = 2 ] && [ "${L[0]}" != "${L[1]}" ] || fail "listeners: ${L[*]}"
put T contacts a.vcf "FN:A"
sync_ok T --peer "${L[0]}"
put T contacts b.vcf "FN:B"
sync_ok T --peer "tcp:${L[1]}"
cmp -s "$T/T/data/contacts/a.vcf" "$T/D/data/contacts/a.vcf" || fail "a.vcf did not reach D"
cmp -s "$T/T/data/contacts/b.vcf" "$T/D/data/contacts/b.vcf" || fail "b.vcf did not reach D"
ok "'simsync listen' serves on two addresses at once (${L[*]})"
stop_bg

# ------------------------------------------ daemon --listen A --listen B
mkdir -p "$T/nops"
"$SIMSYNC" --home "$T/D" daemon --listen 127.0.0.1:0 --listen tcp:127.0.0.1:0 \
    --power-supply-dir "$T/nops" 2>"$T/D.daemon" &
BG="$BG $!"
line=$(wait_lines 10 "$T/D.daemon" '/serving paired nodes on/p' 1) \
    || { cat "$T/D.daemon" >&2; fail "D's daemon did not listen"; }
mapfile -t L < <(printf '%s\n' "$line" | grep -o '127\.0\.0\.1:[0-9]*')
[ "${#L[@]}" = 2 ] && [ "${L[0]}" != "${L[1]}" ] || fail "daemon listeners: $line"
put T contacts c.vcf "FN:C"
sync_ok T --peer "${L[0]}"
put T contacts d.vcf "FN:D"
sync_ok T --peer "${L[1]}"
same_tree T D contacts
ok "the daemon serves on every --listen address at once"
stop_bg

# ------------------------------------------------------------ refusals
expect_exit 2 ss --home "$T/T" sync --peer rfcomm:12:34
grep -q "Bluetooth address" "$T/last.err" || fail "unclear: $(cat "$T/last.err")"
expect_exit 2 ss --home "$T/D" listen rfcomm:31
grep -q "not an RFCOMM channel" "$T/last.err" || fail "unclear: $(cat "$T/last.err")"
expect_exit 2 ss --home "$T/D" daemon --listen 127.0.0.1:0 --listen usb:1d6b
grep -q "usb:VID:PID" "$T/last.err" || fail "unclear: $(cat "$T/last.err")"
expect_exit 2 ss --home "$T/T" sync --peer usb-gadget:../x
grep -q "USB device controller" "$T/last.err" || fail "unclear: $(cat "$T/last.err")"
expect_exit 2 ss --home "$T/T" pair --peer tcp:127.0.0.1 --yes
expect_exit 2 ss --home "$T/D" listen
expect_exit 2 ss --home "$T/D" serve
ok "malformed link addresses: exit 2 with a reason"
# A well-formed RFCOMM address no controller here can reach: exit 4.
expect_exit 4 ss --home "$T/T" sync --peer rfcomm:00:11:22:33:44:55:3
grep -q "cannot reach the peer at rfcomm:00:11:22:33:44:55:3" "$T/last.err" \
    || fail "unclear: $(cat "$T/last.err")"
ok "an unreachable RFCOMM peer: exit 4"

# The desktop also listens for handsets that dial over USB ('listen usb',
# next to TCP); which handsets come is tested on a real kernel in tests/vm.
"$SIMSYNC" --home "$T/D" listen 127.0.0.1:0 usb >"$T/listen-usb.out" \
    2>"$T/listen-usb.err" &
BG="$BG $!"
mapfile -t L < <(wait_lines 10 "$T/listen-usb.out" 's/^Serving paired nodes on \(.*\)\.$/\1/p' 2) \
    || { cat "$T/listen-usb.out" "$T/listen-usb.err" >&2; fail "D did not listen on usb"; }
[ "${L[1]}" = usb ] || fail "listeners: ${L[*]}"
put T contacts e.vcf "FN:E"
sync_ok T --peer "${L[0]}"
cmp -s "$T/T/data/contacts/e.vcf" "$T/D/data/contacts/e.vcf" || fail "e.vcf did not reach D"
ok "'listen 127.0.0.1:0 usb': the desktop waits on USB and still serves TCP"
stop_bg
