#!/bin/sh
# The desktop companion (issue 5 item 5): one desktop D (role desktop)
# runs 'simsync daemon' listening on TCP, RFCOMM and USB at once, and
# three handsets of the same subscriber come to it, one per link: A over
# TCP, B over RFCOMM (btvirt), C over USB as a gadget on dummy_hcd that
# dials the desktop ('--peer usb-gadget'; D listens with 'usb'). Each
# pairs with D first, then syncs with the running daemon: edits made on
# any of the four reach all of them. Then C's cable is pulled while C
# sends a large file: C's sync fails as a lost link (exit 4), the daemon
# lives on, and once plugged back in C's next sync resumes and finishes,
# and a later one still works, all without restarting the daemon.
# Afterwards all four meet the hub without duplicates.
. /lib/vm/simsync.sh
. /lib/vm/bt.sh
. /lib/vm/usb.sh
trap 'stop_bg; bt_stop' EXIT
usb_check
bt_start
bt_up
start_hub
new_sim sim 440101234567890

ss --home "$T/D" init --role desktop --terminal-id desk-D >/dev/null ||
    fail "init D"
SIMSYNC_PIN=1234 ss --home "$T/D" sim insert "$T/sim.sim" >/dev/null ||
    fail "sim insert into D"
SIMSYNC_PIN=1234 SIMSYNC_PASSWORD=pw-D SIMSYNC_RECOVERY=rec-secret \
    ss --home "$T/D" register --hub "$HUB_ADDR" --hub-id "$HUB_ID" \
    >"$T/register-D.out" 2>&1 || { cat "$T/register-D.out"; fail "register D"; }
for h in A B C; do terminal $h sim; done

# same_code: both sides of the last pairing showed the same code.
same_code() {
    cd_=$(sed -n 's/^Pairing code: //p' "$T/pair-D.out")
    ch_=$(sed -n 's/^Pairing code: //p' "$T/pair-$1.out")
    [ -n "$cd_" ] && [ "$cd_" = "$ch_" ] || fail "codes differ: D '$cd_', $1 '$ch_'"
}

# ------------------------------------------------------------ pairing
pair_listen D 127.0.0.1:0
paddr=$(sed -n 's/^Waiting for the other node on \([0-9.]*:[0-9]*\): .*/\1/p' "$T/pair-D.out")
ss --home "$T/A" pair --peer "$paddr" --yes >"$T/pair-A.out" 2>&1 ||
    { cat "$T"/pair-*.out; fail "A did not pair over TCP"; }
pair_end 0
same_code A

pair_listen D rfcomm:3
ss --home "$T/B" pair --peer "rfcomm:$ADDR_A:3" --yes >"$T/pair-B.out" 2>&1 ||
    { cat "$T"/pair-*.out; fail "B did not pair over RFCOMM"; }
pair_end 0
same_code B

pair_listen D usb
grep -q "run 'simsync pair --peer usb-gadget' there" "$T/pair-D.out" ||
    fail "D's hint: $(cat "$T/pair-D.out")"
ss --home "$T/C" pair --peer usb-gadget --yes >"$T/pair-C.out" 2>&1 ||
    { cat "$T"/pair-*.out; fail "C did not pair over USB"; }
pair_end 0
same_code C
[ ! -e "$GADGET" ] || fail "pair --peer usb-gadget left its gadget behind"
ss --home "$T/C" --json peers | grep -q '"addr":"usb-gadget"' ||
    fail "C's peer record: $(ss --home "$T/C" --json peers)"
[ "$(npeers D)" = 3 ] || fail "D has $(npeers D) peers, not 3"
ok "A (TCP), B (RFCOMM) and C (USB, the handset dialling) paired with D"

# Nobody listens on usb yet: dialling from the handset gives up (exit 4)
# after SIMSYNC_USB_WAIT_MS and says what to run on the desktop.
SIMSYNC_USB_WAIT_MS=1000 expect_exit 4 ss --home "$T/C" sync --peer usb-gadget
grep -q "no desktop opened this handset's simsync USB function" "$T/last.err" &&
    grep -q "daemon --listen usb" "$T/last.err" ||
    fail "no reason in: $(cat "$T/last.err")"
[ ! -e "$GADGET" ] || fail "a dial that gave up left its gadget behind"
ok "a handset dialling with no desktop listening: exit 4 with a reason"

# ------------------------------------------------ the daemon, three links
SIMSYNC_QUIET= bg simsync --home "$T/D" daemon --listen 127.0.0.1:0 \
    --listen rfcomm:5 --listen usb 2>"$T/daemon.log"
DAEMON_PID=$LAST_BG
DAEMON_T0=$(cut -d. -f1 /proc/uptime)
line=$(wait_match 30 "$T/daemon.log" '/serving paired nodes on/p') ||
    { cat "$T/daemon.log"; fail "D's daemon did not listen"; }
TCP=$(echo "$line" | grep -o '127\.0\.0\.1:[0-9]*')
echo "$line" | grep -q "rfcomm:.*:5" && echo "$line" | grep -q ', usb' ||
    fail "daemon listeners: $line"
[ -n "$TCP" ] || fail "no TCP address in: $line"
# cpu_ticks PID: user + system time in clock ticks (1/100 s).
cpu_ticks() { set -- $(cut -d' ' -f14,15 "/proc/$1/stat"); echo $(($1 + $2)); }

put D contacts desk.vcf "FN:Desk"
put A contacts a.vcf "FN:A"
sync_ok A --peer "$TCP"
put B contacts b.vcf "FN:B"
mkdir -p "$T/B/data/archive"
head -c 100000 /dev/urandom >"$T/B/data/archive/b.jpg"
sync_ok B --peer "rfcomm:$ADDR_A:5"
put C contacts c.vcf "FN:C"
mkdir -p "$T/C/data/archive"
head -c 300000 /dev/urandom >"$T/C/data/archive/c.jpg"
sync_ok C --peer usb-gadget
[ ! -e "$GADGET" ] || fail "sync --peer usb-gadget left its gadget behind"
sync_ok A --peer "$TCP"
sync_ok B --peer "rfcomm:$ADDR_A:5"
for h in A B C; do same_tree D $h contacts; same_tree D $h archive; done
[ -f "$T/A/data/contacts/c.vcf" ] && [ -f "$T/C/data/contacts/a.vcf" ] &&
    [ -f "$T/B/data/contacts/desk.vcf" ] || fail "an edit did not travel"
kill -0 "$DAEMON_PID" || fail "the daemon died"
grep -q "sync with imei-C: ok" "$T/daemon.log" ||
    { cat "$T/daemon.log"; fail "the daemon did not log C's sync"; }
ok "edits of D, A, B and C reached all four through one daemon on three links"

# A handset that waits (listen usb-gadget) is not the daemon's: the
# daemon takes only handsets that dial, and the desktop dials this one.
usb_listen C
put C contacts waiting.vcf "FN:Waiting"
sync_ok D --peer usb
[ -f "$T/D/data/contacts/waiting.vcf" ] || fail "D's own dial did not reach C"
usb_unlisten
grep -q "imei-C.*failed\|connection failed" "$T/daemon.log" &&
    { cat "$T/daemon.log"; fail "the daemon touched a waiting handset"; }
ok "with the daemon listening on usb, D still dials a waiting handset itself"

# ------------------------------------------------ the cable, pulled mid-sync
size=$((4 * 1024 * 1024))
head -c $size /dev/urandom >"$T/C/data/archive/big.bin"
before=$(du -sk "$T/D" | cut -f1)
ss --home "$T/C" --json sync --peer usb-gadget >"$T/cut.out" 2>&1 &
SYNC_PID=$!
n=0
while [ $(( $(du -sk "$T/D" | cut -f1) - before )) -lt 1024 ]; do
    kill -0 $SYNC_PID 2>/dev/null || { cat "$T/cut.out"; fail "the sync ended before the cut"; }
    n=$((n + 1)); [ $n -lt 1200 ] || fail "D stored nothing of C's file in 120 s"
    sleep 0.1
done
echo "" >"$GADGET/UDC"
got=0; wait $SYNC_PID || got=$?
[ "$got" = 4 ] || { cat "$T/cut.out"; fail "the cut sync exited $got, not 4"; }
[ ! -e "$GADGET" ] || fail "the cut sync left its gadget behind"
kill -0 "$DAEMON_PID" || { cat "$T/daemon.log"; fail "the daemon died with the cable"; }
ok "unplugged mid-sync: C's sync fails as a lost link (exit 4), the daemon lives"

# Plugged back in: the next sync builds the gadget again and resumes.
put D contacts after.vcf "FN:After the cut"
sync_ok C --peer usb-gadget
cmp "$T/C/data/archive/big.bin" "$T/D/data/archive/big.bin" || fail "big.bin differs"
[ -f "$T/C/data/contacts/after.vcf" ] || fail "D's edit did not reach C"
sent=$(sed -n 's/.*"wire_sent":\([0-9]*\).*/\1/p' "$T/sync.out")
[ -n "$sent" ] && [ "$sent" -lt $((size - 512 * 1024)) ] ||
    fail "the resumed sync sent $sent bytes of $size: not a resume ($(cat "$T/sync.out"))"
put C contacts c2.vcf "FN:C again"
sync_ok C --with desk-D
[ -f "$T/D/data/contacts/c2.vcf" ] || fail "C's later edit did not reach D"
ok "plugged back in, C's syncs resume ($sent of $size bytes) and go on, same daemon"

sync_ok A --peer "$TCP"
sync_ok B --peer "rfcomm:$ADDR_A:5"
for h in A B C; do same_tree D $h contacts; same_tree D $h archive; done
kill -0 "$DAEMON_PID" || fail "the daemon died"
# What waiting on USB costs: the daemon's CPU time over its life (it
# looks at the bus every 200 ms besides serving every sync above).
t=$(cpu_ticks "$DAEMON_PID")
life=$(( $(cut -d. -f1 /proc/uptime) - DAEMON_T0 ))
ok "after the cut all four agree; one daemon served every link throughout (daemon CPU $((t / 100)).$((t % 100 / 10)) s in $life s)"

# What waiting costs once the bus is quiet: CPU ticks (1/100 s) of the
# idle daemon in 5 s, for the record (emulated CPU: slow).
sleep 4
c0=$(cpu_ticks "$DAEMON_PID")
sleep 5
ok "the idle daemon, waiting on three links, used $(( $(cpu_ticks "$DAEMON_PID") - c0 )) ticks of CPU in 5 s"

# Everything the links carried meets the hub: no duplicates, no conflicts.
kill "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
for round in 1 2; do for h in D A B C; do sync_ok $h; done; done
for h in A B C; do same_tree D $h contacts; same_tree D $h archive; done
for h in D A B C; do
    [ "$(copies $h contacts)" = 0 ] && [ "$(copies $h archive)" = 0 ] ||
        fail "$h has conflict copies: $(ls "$T/$h/data/contacts" "$T/$h/data/archive")"
done
ok "with the hub afterwards: identical trees on all four, no duplicates"
