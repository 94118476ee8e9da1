#!/bin/sh
# SDP with bluetoothd: a node listening on rfcomm:0 (a free channel)
# registers the simsync service record with bluetoothd, the other node
# finds the channel by an SDP search over the air (it is given only the
# Bluetooth address) for the pairing and for the sync, and the record is
# gone once the listener closes.
. /lib/vm/simsync.sh
. /lib/vm/bt.sh
trap 'stop_bg; btd_stop' EXIT

btd_start
start_hub
new_sim sim 440101234567890
terminal A sim
terminal B sim

# records_local: the simsync records bluetoothd holds now
records_local() { sdptool browse local 2>/dev/null | grep -c 'Service Name: simsync' || true; }
[ "$(records_local)" = 0 ] || fail "a simsync record exists before any listener"

pair_listen A rfcomm:0
ch=$(sed -n 's/^Waiting for the other node on rfcomm:[0-9A-F:]*:\([0-9]*\): .*/\1/p' "$T/pair-A.out")
[ -n "$ch" ] || { cat "$T/pair-A.out"; fail "no channel in A's address"; }
[ "$(records_local)" = 1 ] || { sdptool browse local; fail "the pairing listener registered no record"; }
ss --home "$T/B" pair --peer "rfcomm:$ADDR_A" --yes >"$T/pair-B.out" 2>&1 ||
    { cat "$T"/pair-*.out "$T/bluetoothd.log"; fail "B did not pair through SDP"; }
pair_end 0
ok "B found A's pairing channel ($ch) by SDP and paired"
[ "$(records_local)" = 0 ] || fail "the record outlived the pairing listener"
ok "the record went with the pairing listener"

bg simsync --home "$T/A" listen rfcomm:0 >"$T/listen.out" 2>"$T/listen.err"
LISTEN_PID=$LAST_BG
wait_match 20 "$T/listen.out" '/^Serving paired nodes on rfcomm:/p' >/dev/null ||
    { cat "$T/listen.out" "$T/listen.err"; fail "A did not listen"; }
sdptool browse local >"$T/records.txt" 2>&1
grep -q 'Service Name: simsync' "$T/records.txt" || { cat "$T/records.txt"; fail "no record"; }
grep -qi '6838da12-a526-486d-af8a-7be1a58050dd' "$T/records.txt" ||
    { cat "$T/records.txt"; fail "the record lacks the simsync service UUID"; }

put B contacts alice.vcf "FN:Alice"
sync_ok B --peer "rfcomm:$ADDR_A"
cmp "$T/A/data/contacts/alice.vcf" "$T/B/data/contacts/alice.vcf" || fail "alice differs"
put A contacts bob.vcf "FN:Bob"
sync_ok B --peer "rfcomm:$ADDR_A"
cmp "$T/A/data/contacts/bob.vcf" "$T/B/data/contacts/bob.vcf" || fail "bob differs"
ok "B synced both ways with A at the channel SDP named"

kill "$LISTEN_PID"
wait "$LISTEN_PID" 2>/dev/null
[ "$(records_local)" = 0 ] || fail "the record outlived the listener"
expect_exit 4 ss --home "$T/B" sync --peer "rfcomm:$ADDR_A"
grep -q 'cannot reach the peer' "$T/last.err" || fail "unclear error: $(cat "$T/last.err")"
ok "the record is removed on close; then the peer is unreachable (exit 4)"
