#!/bin/sh
# The desktop D sends a large file to the handset H over USB; when H has
# stored part of it, the gadget's controller is unbound (the cable is
# pulled). D's sync fails as a lost link (exit 4), H keeps listening; the
# controller is bound again (plugged back in) and the next sync finishes
# without sending the file again from its start: it resumes at the first
# chunk H had not acknowledged. Both end with the same bytes.
. /lib/vm/simsync.sh
. /lib/vm/usb.sh
trap 'stop_bg; kill $LISTEN_PID 2>/dev/null' EXIT
LISTEN_PID=
usb_check
start_hub
new_sim sim 440101234567890
terminal H sim
terminal D sim
pair_listen H usb-gadget
ss --home "$T/D" pair --peer usb --yes >"$T/pair-D.out" 2>&1 ||
    { cat "$T"/pair-*.out; fail "D did not pair over USB"; }
pair_end 0
usb_listen H

size=$((8 * 1024 * 1024))
mkdir -p "$T/D/data/archive"
head -c $size /dev/urandom >"$T/D/data/archive/big.bin"
before=$(du -sk "$T/H" | cut -f1)
ss --home "$T/D" --json sync --peer usb >"$T/cut.out" 2>&1 &
SYNC_PID=$!
# Pull the cable once H holds about a quarter of the file (2 MiB).
n=0
while [ $(( $(du -sk "$T/H" | cut -f1) - before )) -lt 2048 ]; do
    kill -0 $SYNC_PID 2>/dev/null || { cat "$T/cut.out"; fail "the sync ended before the cut"; }
    n=$((n + 1)); [ $n -lt 1200 ] || fail "H stored nothing in 120 s"
    sleep 0.1
done
echo "" >"$GADGET/UDC"
got=0; wait $SYNC_PID || got=$?
[ "$got" = 4 ] || { cat "$T/cut.out"; fail "the cut sync exited $got, not 4"; }
kill -0 "$LISTEN_PID" || fail "H's listener died with the cable"
ok "unbinding mid-sync: D's sync fails as a lost link, H keeps listening"

echo "$UDC" >"$GADGET/UDC"
sync_ok D --peer usb
cmp "$T/D/data/archive/big.bin" "$T/H/data/archive/big.bin" || fail "big.bin differs"
sent=$(sed -n 's/.*"wire_sent":\([0-9]*\).*/\1/p' "$T/sync.out")
[ -n "$sent" ] && [ "$sent" -lt $((size - 1024 * 1024)) ] ||
    fail "the resumed sync sent $sent bytes of $size: not a resume ($(cat "$T/sync.out"))"
secs=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$T/sync.out")
ok "plugged back in, the next sync resumed: $sent of $size bytes sent in $secs s"

sync_ok D --peer usb
grep -q '"sent_items":0,.*"recv_items":0' "$T/sync.out" ||
    fail "a third sync still moved items: $(cat "$T/sync.out")"
usb_unlisten
ok "converged: nothing left to send; the listener removed its gadget"
