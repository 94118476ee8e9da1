#!/bin/sh
# A transfer cut on one link resumes on another: B sends A 3 MB of photos
# over RFCOMM, and B's Bluetooth controller goes down once A has staged
# part of them (A's store grew by 1 MB). The same sync then runs over TCP
# to the same listener: it sends less than the whole (the staged chunks
# are not asked for again), and A ends up with every byte.
. /lib/vm/simsync.sh
. /lib/vm/bt.sh
trap 'stop_bg; bt_stop' EXIT

bt_start
bt_up
start_hub
new_sim sim 440101234567893
terminal A sim
terminal B sim

pair_listen A rfcomm:3
ss --home "$T/B" pair --peer "rfcomm:$ADDR_A:3" --yes >"$T/pair-B.out" 2>&1 ||
    { cat "$T"/pair-*.out; fail "B did not pair over RFCOMM"; }
pair_end 0

bg simsync --home "$T/A" listen 127.0.0.1:0 rfcomm:4 >"$T/listen.out" 2>"$T/listen.err"
wait_match 20 "$T/listen.out" '/^Serving paired nodes on rfcomm:/p' >/dev/null ||
    { cat "$T/listen.out" "$T/listen.err"; fail "A did not listen on RFCOMM"; }
TCP=$(wait_match 5 "$T/listen.out" 's/^Serving paired nodes on \([0-9.]*:[0-9]*\)\.$/\1/p') ||
    { cat "$T/listen.out"; fail "A did not listen on TCP"; }

mkdir -p "$T/B/data/archive"
for i in 1 2 3; do head -c 1000000 /dev/urandom >"$T/B/data/archive/photo$i.jpg"; done
total=3000000

db="$T/A/store/data.mdb"
base=$(stat -c %s "$db")
simsync --home "$T/B" --json sync --peer "rfcomm:$ADDR_A:4" >"$T/cut.out" 2>&1 &
pid=$!
cut=0
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 6000 ]; do
    if [ $(( $(stat -c %s "$db") - base )) -gt 1000000 ]; then
        hciconfig "$BT_B" down && cut=1
        break
    fi
    i=$((i + 1))
    sleep 0.01
done
rc=0
wait "$pid" || rc=$?
[ $cut = 1 ] || fail "the RFCOMM sync ended before the cut (exit $rc): $(cat "$T/cut.out")"
[ $rc = 4 ] || fail "the cut sync exited $rc, not 4 (link lost): $(cat "$T/cut.out")"
ok "B's Bluetooth went down mid-transfer: the sync stopped with exit 4"

sync_ok B --peer "$TCP"
sent=$(sed -n 's/.*"sent_bytes":\([0-9]*\).*/\1/p' "$T/sync.out")
echo "# resumed over TCP: sent $sent of $total bytes"
[ -n "$sent" ] && [ "$sent" -lt "$total" ] ||
    fail "the TCP sync sent everything again ($sent of $total): $(cat "$T/sync.out")"
same_tree A B archive
ok "resumed over TCP from what A had staged over RFCOMM ($sent of $total bytes sent); A has every byte"
