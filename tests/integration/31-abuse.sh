#!/usr/bin/env bash
# Abuse cases (issue 6 item 7): what a thief, a stranger's SIM, a stolen
# recording, a fake hub or a broken store must not achieve. Each case
# checks what a user would: exit code, message, and that nothing moved.
#
# Covered elsewhere, not repeated here:
#   another subscriber's SIM in a bound terminal  30-refusals (sync),
#                                                 95-erase, 96-daemon-policy
#   the owner's SIM in an unbound terminal        30-refusals
#   three wrong PINs block the SIM, PUK unblocks  30-refusals
#   a copied binding without the node key         30-refusals
#   a hub serving an old generation (exit 5)      93-backup-tamper (b)
#   a missing class folder deletes nothing        60-guards-classes
#   subscriber ID not in the hub's files          10-fig16 (after syncs)
. "$(dirname "$0")/lib.sh"

HUBPROBE=${HUBPROBE:-$(dirname "$LINKSHIM")/hubprobe}
HUBTAMPER=${HUBTAMPER:-$(dirname "$LINKSHIM")/hubtamper}
[ -x "$HUBPROBE" ] || fail "no hubprobe at $HUBPROBE (build the hubprobe target)"
[ -x "$HUBTAMPER" ] || fail "no hubtamper at $HUBTAMPER"

DAEMONS=
stop_daemons() {
    for p in $DAEMONS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    DAEMONS=
}
trap 'stop_daemons; cleanup' EXIT

# wait_for SECONDS CMD...: poll CMD every 0.1 s, at most SECONDS.
wait_for() {
    local tries=$(($1 * 10)); shift
    for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.1; done
    return 1
}
last_says() {
    grep -q -- "$1" "$T/last.err" \
        || fail "expected '$1' in the message, got: $(cat "$T/last.err")"
}
json_field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2; }
hub_stats() { ss --home "$T/hub" --json hub stats; }
pin_tries() { sed -n 's/^pin_tries=//p' "$T/$1.sim"; }
# count NAME CLASS: files in a class folder.
count() { find "$T/$1/data/$2" -type f 2>/dev/null | wc -l; }

start_hub
PROTO=$("$HUBPROBE" handshake "$HUB_ADDR" >"$T/probe.out"; echo $?)
[ "$PROTO" = 0 ] || fail "control handshake with the right version: $(cat "$T/probe.out")"

# ------------------------------------------- another subscriber's generation
# First, while these two are the only subscribers with generations (swap
# needs exactly two). The hub serves each subscriber the other's
# generations (hubtamper swap):
# the terminal cannot open them and says so (exit 5), writes nothing.
new_sim s1 44123000977
new_sim s2 44123000978
new_terminal S1; insert S1 s1; register S1
new_terminal S2; insert S2 s2; register S2
put S1 contacts s1.vcf "FN:Subscriber one"
put S2 contacts s2.vcf "FN:Subscriber two"
ss --home "$T/S1" backup now >/dev/null 2>&1 || fail "backup S1"
ss --home "$T/S2" backup now >/dev/null 2>&1 || fail "backup S2"
ss --home "$T/S2" backup now >/dev/null 2>&1 || fail "backup S2 (2)"
"$HUBTAMPER" "$T/hub" swap >"$T/tamper.out" 2>&1 || fail "swap: $(cat "$T/tamper.out")"
rm "$T/S1/data/contacts/s1.vcf"
expect_exit 5 ss --home "$T/S1" backup list
swap_list=$(head -c 160 "$T/last.err")
expect_exit 5 ss --home "$T/S1" restore 1
[ -z "$(ls -A "$T/S1/data/contacts")" ] || fail "S1 restored: $(ls "$T/S1/data/contacts")"
expect_exit 5 ss --home "$T/S2" restore 1
[ ! -e "$T/S2/data/contacts/s1.vcf" ] || fail "S2 got S1's data"
"$HUBTAMPER" "$T/hub" swap >"$T/tamper.out" 2>&1 || fail "swap back"
expect_exit 0 ss --home "$T/S1" restore 1
[ -f "$T/S1/data/contacts/s1.vcf" ] || fail "S1's own generation did not restore"
ok "another subscriber's generations: backup list and restore exit 5 ($swap_list...), nothing written; the real ones restore"

# --------------------------------------------------------------- PIN
# Each wrong PIN costs the SIM exactly one try, nothing in simsync tries
# again on its own, and the PIN is never written anywhere.
PIN=86420531
BADPIN=97531864
SUB_P=44123000971
ss sim create "$T/p.sim" --subscriber $SUB_P --pin $PIN --puk 12345678 \
    >"$T/out.0" 2>&1 || fail "sim create"
new_terminal P
expect_exit 0 env SIMSYNC_PIN=$PIN "$SIMSYNC" --home "$T/P" sim insert "$T/p.sim"
cp "$T/last.out" "$T/out.1"; cp "$T/last.err" "$T/err.1"
SIMSYNC_PIN=$PIN SIMSYNC_PASSWORD=pw-P SIMSYNC_RECOVERY=rec-p \
    ss --home "$T/P" register --hub "$HUB_ADDR" --hub-id "$HUB_ID" \
    >"$T/out.2" 2>&1 || fail "register P"
[ "$(pin_tries p)" = 3 ] || fail "tries after a right PIN: $(pin_tries p)"
# Syncs, status and a daemon never verify the PIN (no tries spent).
put P contacts p.vcf "FN:P"
sync_ok P; cp "$T/sync.out" "$T/out.3"
ss --home "$T/P" status >"$T/out.4" 2>&1
SIMSYNC_QUIET= "$SIMSYNC" --home "$T/P" daemon >"$T/P.daemon" 2>&1 &
DAEMONS="$DAEMONS $!"
wait_for 10 test -S "$T/P/daemon.sock" || fail "P's daemon did not start: $(cat "$T/P.daemon")"
tr '\0' ' ' <"/proc/${DAEMONS# }/cmdline" >"$T/out.cmdline"
sleep 1
stop_daemons
[ "$(pin_tries p)" = 3 ] || fail "sync, status or the daemon spent a PIN try"
# A wrong PIN on register costs one try and stops there.
expect_exit 3 env SIMSYNC_PIN=$BADPIN SIMSYNC_PASSWORD=pw-P SIMSYNC_RECOVERY=rec-p \
    "$SIMSYNC" --home "$T/P" register --hub "$HUB_ADDR" --hub-id "$HUB_ID"
cp "$T/last.out" "$T/out.5"; cp "$T/last.err" "$T/err.5"
[ "$(pin_tries p)" = 2 ] || fail "a wrong PIN on register spent $((3 - $(pin_tries p))) tries"
ss --home "$T/P" sim remove >/dev/null
for want in 1 0; do
    expect_exit 3 env SIMSYNC_PIN=$BADPIN "$SIMSYNC" --home "$T/P" sim insert "$T/p.sim"
    cp "$T/last.out" "$T/out.6.$want"; cp "$T/last.err" "$T/err.6.$want"
    [ "$(pin_tries p)" = $want ] || fail "tries after a wrong insert: $(pin_tries p), want $want"
done
last_says "blocked"
puk=$(sed -n 's/^puk_tries=//p' "$T/p.sim")
expect_exit 3 env SIMSYNC_PIN=$PIN "$SIMSYNC" --home "$T/P" sim insert "$T/p.sim"
[ "$(pin_tries p)" = 0 ] && [ "$(sed -n 's/^puk_tries=//p' "$T/p.sim")" = "$puk" ] \
    || fail "a blocked SIM was tried again"
for secret in $PIN $BADPIN; do
    if grep -rla -- "$secret" "$T" >"$T/leak" 2>/dev/null; then
        fail "PIN $secret found in: $(tr '\n' ' ' <"$T/leak")"
    fi
done
ok "wrong PINs: one try each (3 -> 2 -> 1 -> 0), none spent by sync/status/daemon, blocked stays blocked; the PIN is in no file, log or output"

# ---------------------------------------------------------- password guessing
# A persistent count of wrong terminal passwords, a doubling wait
# (base delay lowered for the test in the terminal's config), a lockout
# after 10, a reset on the right one.
new_sim g 44123000972
new_terminal G; insert G g; register G
new_terminal G2; insert G2 g; register G2
guard() { sed -n "s/^$1=//p" "$T/${2:-G}/password.guard" 2>/dev/null; }
# wrong_password GUESS [HOME], right_password [HOME]: register with a
# wrong or the right terminal password.
wrong_password() {
    expect_exit 3 env SIMSYNC_PIN=1234 SIMSYNC_PASSWORD="guess-$1" SIMSYNC_RECOVERY=rec-secret \
        "$SIMSYNC" --home "$T/${2:-G}" register --hub "$HUB_ADDR" --hub-id "$HUB_ID"
}
right_password() {
    env SIMSYNC_PIN=1234 SIMSYNC_PASSWORD="pw-${1:-G}" SIMSYNC_RECOVERY=rec-secret \
        "$SIMSYNC" --home "$T/${1:-G}" register --hub "$HUB_ADDR" --hub-id "$HUB_ID" \
        >"$T/last.out" 2>"$T/last.err"
}
# On G2, with a base delay of 10 minutes: a second guess right after the
# first is refused unchecked, and not counted; so is the right password.
echo "password_delay_ms=600000" >>"$T/G2/config"
wrong_password 1 G2
last_says "wrong terminal password (1 in a row; 9 left"
wrong_password 2 G2
last_says "wait 600 s"
[ "$(guard failures G2)" = 1 ] || fail "a guess during the wait was counted: $(guard failures G2)"
expect_exit 3 right_password G2
last_says "wait"
[ "$(guard failures G2)" = 1 ] || fail "the right password during the wait reset the count"
ok "a guess during the wait is refused unchecked (even the right one) and not counted"
# On G, with a base delay of 1 ms (waits 1, 2, 4, ... ms).
echo "password_delay_ms=1" >>"$T/G/config"
waits=
for i in 1 2 3 4 5; do
    sleep $(awk "BEGIN{print 2^($i-1)/1000 + 0.05}")
    wrong_password $i
    [ "$(guard failures)" = $i ] || fail "count after $i wrong: $(guard failures)"
    waits="$waits $(guard wait_ms)"
done
[ "$waits" = " 1 2 4 8 16" ] || fail "the waits after each failure: $waits ms"
sleep 0.1
right_password || fail "right password after 5 wrong: $(cat "$T/last.err")"
[ "$(guard failures)" = 0 ] || fail "count not reset by the right password"
ok "5 wrong passwords counted, waits$waits ms (base 1 ms); the right one resets the count"
for i in $(seq 1 10); do
    sleep $(awk "BEGIN{print 2^($i-1)/1000 + 0.05}")
    wrong_password "x$i"
done
last_says "now locked"
[ "$(guard failures)" = 10 ] || fail "count after 10: $(guard failures)"
sleep 1
expect_exit 3 right_password
last_says "locked"
[ "$(guard failures)" = 10 ] || fail "a locked guard changed"
# The count survives a damaged file (read as locked, not as a reset).
echo garbage >"$T/G/password.guard"
expect_exit 3 right_password
last_says "damaged"
ok "10 wrong passwords lock the terminal password: even the right one is refused (exit 3, 'locked')"
# Erasing the terminal (the documented way out) removes the guard too.
expect_exit 0 ss --home "$T/G" erase
[ -z "$(ls -A "$T/G")" ] || fail "left after erase: $(ls -A "$T/G")"
ok "erase clears the locked terminal completely"

# ----------------------------------------------------- SIM removed mid-session
# A download through a slow link; the SIM is taken out as the first batch
# lands: the sync stops at the next batch boundary (exit 3), every file it
# wrote is whole, nothing more arrives without the SIM, and once it is back
# the next sync completes.
new_sim m 44123000973
new_terminal MA; insert MA m; register MA
new_terminal MB; insert MB m; register MB
python3 - "$T/MA/data/contacts" <<'EOF'
import os, sys, base64
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
for i in range(1000):
    with open(os.path.join(d, "c%04d.vcf" % i), "w") as f:
        f.write("FN:Person %d\nNOTE:%s\n" % (i, base64.b64encode(os.urandom(1500)).decode()))
EOF
sync_ok MA
start_shim slow --rate 200000
ss --home "$T/MB" sync --hub "$SHIM_ADDR" >"$T/mid.out" 2>"$T/mid.err" &
SYNC_PID=$!
wait_for 60 sh -c "ls -A '$T/MB/data/contacts' 2>/dev/null | grep -q ." \
    || fail "nothing arrived on MB: $(cat "$T/mid.err")"
ss --home "$T/MB" sim remove >/dev/null || fail "sim remove"
rc=0; wait "$SYNC_PID" || rc=$?
stop_shims
[ "$rc" = 3 ] || fail "sync after the SIM was taken out: exit $rc, $(cat "$T/mid.err")"
grep -q "taken out or changed during the sync" "$T/mid.err" || fail "message: $(cat "$T/mid.err")"
got=$(count MB contacts)
[ "$got" -gt 0 ] && [ "$got" -lt 1000 ] || fail "MB holds $got contacts"
for f in "$T/MB/data/contacts/"*; do
    cmp -s "$f" "$T/MA/data/contacts/$(basename "$f")" || fail "$(basename "$f") is not whole"
done
[ -z "$(find "$T/MB/data" -name '.simsync-tmp-*')" ] || fail "temp files left"
expect_exit 3 ss --home "$T/MB" sync
last_says "no SIM"
[ "$(count MB contacts)" = "$got" ] || fail "a sync without the SIM moved data"
insert MB m
sync_ok MB
same_tree MA MB contacts
ok "SIM taken out mid-download: stopped at a batch boundary (exit 3, $got of 1000 whole files), nothing without the SIM, resumed after"

# ------------------------------------------------------------ replay
# A terminal's session, recorded on the wire and sent again to the hub
# after the item it uploaded was deleted: the handshake fails (the hub's
# ephemeral key is new), nothing is applied, the deletion stands.
new_sim r 44123000974
new_terminal RA; insert RA r; register RA
new_terminal RB; insert RB r; register RB
start_shim rec --record "$T/rec"
put RA contacts replayed.vcf "FN:Replayed"
sync_ok RA --hub "$SHIM_ADDR"
stop_shims
[ -s "$T/rec.1.up" ] || fail "nothing recorded"
sync_ok RB
[ -f "$T/RB/data/contacts/replayed.vcf" ] || fail "the recorded sync did not upload"
rm "$T/RA/data/contacts/replayed.vcf"
put RA contacts other.vcf "FN:Other"
sync_ok RA; sync_ok RB
[ ! -e "$T/RB/data/contacts/replayed.vcf" ] || fail "the deletion did not reach RB"
before=$(hub_stats)
failed0=$(grep -c "connection failed" "$T/hub.log")
port=${HUB_ADDR##*:}
(exec 3<>"/dev/tcp/127.0.0.1/$port"; cat "$T/rec.1.up" >&3; timeout 10 cat <&3 >/dev/null) \
    2>/dev/null || true
wait_for 10 sh -c "[ \$(grep -c 'connection failed' '$T/hub.log') -gt $failed0 ]" \
    || fail "the hub did not report the replayed connection: $(tail -n3 "$T/hub.log")"
grep "connection failed" "$T/hub.log" | tail -n1 | grep -q "authentic\|crypto\|decrypt" \
    || fail "replay refused for another reason: $(grep "connection failed" "$T/hub.log" | tail -n1)"
[ "$(hub_stats)" = "$before" ] || fail "the hub changed: $before -> $(hub_stats)"
sync_ok RB
[ ! -e "$T/RB/data/contacts/replayed.vcf" ] || fail "the replay resurrected replayed.vcf"
ok "replayed session ($(stat -c %s "$T/rec.1.up") bytes): handshake refused ($(grep "connection failed" "$T/hub.log" | tail -n1 | sed 's/^hub: //')), hub unchanged"

# ----------------------------------------------- right terminal ID, other key
new_sim k 44123000975
new_terminal KA; insert KA k; register KA
new_terminal KX
sed -i 's/^terminal_id=.*/terminal_id=imei-KA/' "$T/KX/config"
insert KX k
expect_exit 3 env SIMSYNC_PIN=1234 SIMSYNC_PASSWORD=pw-KX SIMSYNC_RECOVERY=rec-secret \
    "$SIMSYNC" --home "$T/KX" register --hub "$HUB_ADDR" --hub-id "$HUB_ID"
last_says "another key"
code=0; "$HUBPROBE" hello "$HUB_ADDR" --subscriber 44123000975 --terminal imei-KA \
    >"$T/probe.out" 2>&1 || code=$?
[ "$code" = 3 ] || fail "hello with KA's terminal ID and another key: $(cat "$T/probe.out")"
grep -q "refused" "$T/probe.out" || fail "probe: $(cat "$T/probe.out")"
grep -q "sync refused for terminal imei-KA: no matching registration" "$T/hub.log" \
    || fail "hub log: $(tail -n3 "$T/hub.log")"
put KA contacts ka.vcf "FN:KA"
sync_ok KA
ok "terminal ID imei-KA with another key: registration and hello refused (exit 3); KA still syncs"

# ------------------------------------------------------------ downgrade
code=0; "$HUBPROBE" handshake "$HUB_ADDR" --prologue-version 0 >"$T/probe.out" 2>&1 || code=$?
[ "$code" = 3 ] || fail "handshake with protocol version 0: $(cat "$T/probe.out")"
grep -q "result: handshake:" "$T/probe.out" || fail "probe: $(cat "$T/probe.out")"
hs0=$(cat "$T/probe.out")
code=0; "$HUBPROBE" hello "$HUB_ADDR" --subscriber 44123000975 --terminal imei-KA \
    --proto 0 >"$T/probe.out" 2>&1 || code=$?
[ "$code" = 3 ] || fail "hello with protocol version 0: $(cat "$T/probe.out")"
ok "downgrade: a handshake with protocol version 0 fails ($hs0); a Hello with version 0 is refused"

# ------------------------------------------------------ forged backup request
# An impostor at the hub's address (another key) asks the daemon for a
# backup: the daemon's handshake pins the hub's key, so the impostor never
# gets as far as a Hello and no backup is made.
new_sim f 44123000976
new_terminal F; insert F f; register F
put F contacts f.vcf "FN:F"
sync_ok F
"$HUBPROBE" impostor --listen 127.0.0.1:0 --port-file "$T/imp.addr" \
    >"$T/imp.out" 2>"$T/imp.err" &
IMP=$!
wait_for 10 test -s "$T/imp.addr" || fail "impostor did not start: $(cat "$T/imp.err")"
# Control: a client that pins nothing is taken in by the impostor.
"$HUBPROBE" impostor --listen 127.0.0.1:0 --port-file "$T/imp2.addr" \
    >"$T/imp2.out" 2>"$T/imp2.err" &
IMP2=$!
wait_for 10 test -s "$T/imp2.addr" || fail "impostor 2 did not start"
"$HUBPROBE" hello "$(cat "$T/imp2.addr")" --subscriber 44123000976 --terminal imei-F \
    --op control >"$T/probe.out" 2>&1 || fail "control: $(cat "$T/probe.out")"
wait "$IMP2" || fail "impostor 2: $(cat "$T/imp2.out" "$T/imp2.err")"
grep -q "got a hello" "$T/imp2.out" || fail "impostor 2: $(cat "$T/imp2.out")"
cp "$T/F/binding" "$T/F.binding"
sed -i "s/^hub=.*/hub=$(cat "$T/imp.addr")/" "$T/F/binding"
SIMSYNC_QUIET= "$SIMSYNC" --home "$T/F" daemon >"$T/F.daemon" 2>&1 &
DAEMONS="$DAEMONS $!"
code=0
wait_for 30 sh -c "! kill -0 $IMP 2>/dev/null" || fail "the daemon never reached the impostor"
wait "$IMP" || code=$?
stop_daemons
cp "$T/F.binding" "$T/F/binding"
[ "$code" = 3 ] || fail "the impostor was taken for the hub: $(cat "$T/imp.out")"
grep -q "got a hello" "$T/imp.out" && fail "the daemon sent the impostor a hello"
ss --home "$T/F" log >"$T/F.log" 2>&1
grep -qi "not the hub\|key mismatch" "$T/F.log" "$T/F.daemon" \
    || fail "the daemon did not say why: $(tail -n5 "$T/F.log")"
gens=$(ss --home "$T/hub" hub generations --subscriber 44123000976 2>&1)
echo "$gens" | grep -q "^ *[0-9]" && fail "a generation was made: $gens"
why=$(grep -h -o -i -m1 "not the hub[^(]*" "$T/F.log" "$T/F.daemon" | head -n1)
ok "impostor hub asking for a backup: the daemon refused its key ('$why'), no hello, no generation"

# ------------------------------------------------------------ epoch reset
# A terminal whose store is recreated (new epoch) still holds an old
# version of an item another terminal edited since: its re-scan is a new
# replica's edit, concurrent with the newer one, so the newer version is
# kept (winner or conflict copy) on every terminal; nothing is lost.
new_sim e 44123000979
new_terminal EA; insert EA e; register EA
new_terminal EB; insert EB e; register EB
put EA contacts e1.vcf "FN:Old version"
put EA contacts e2.vcf "FN:Untouched"
sync_ok EA; sync_ok EB
put EB contacts e1.vcf "FN:Newer version"
sync_ok EB
rm -rf "$T/EA/store"
sync_ok EA; sync_ok EB; sync_ok EA
for t in EA EB; do
    grep -lq "Newer version" "$T/$t/data/contacts/"* || fail "the newer edit is lost on $t"
    grep -lq "Old version" "$T/$t/data/contacts/"* || fail "the old version vanished on $t"
done
same_tree EA EB contacts
ok "store recreated with an old copy: the newer edit survives everywhere ($(ls "$T/EB/data/contacts" | tr '\n' ' '))"

# A recreated store with an emptied folder: no deletion reaches anyone.
rm -rf "$T/EA/store"; rm -f "$T/EA/data/contacts/"*
sync_ok EA; sync_ok EB
n=$(count EB contacts)
[ "$n" -ge 3 ] || fail "EB lost items after EA's reset: $n left"
same_tree EA EB contacts
ok "store recreated and folder emptied: nothing deleted, EA got its $n items back"

# --------------------------------------------------------- emptied class folder
# A synced folder that suddenly holds no file deletes nothing without
# --allow-delete, even when it had only two items.
new_sim x 44123000980
new_terminal XA; insert XA x; register XA
new_terminal XB; insert XB x; register XB
put XA pim one.ics "SUMMARY:One"
put XA pim two.ics "SUMMARY:Two"
for i in 1 2 3 4 5; do put XA contacts "p$i.vcf" "FN:P$i"; done
sync_ok XA; sync_ok XB
# pim alone first: two items are under the proportional guard's reach.
rm -f "$T/XA/data/pim/"*
expect_exit 3 ss --home "$T/XA" sync
last_says "would delete 2 items"
sync_ok XB
[ "$(count XB pim)" = 2 ] || fail "an emptied pim folder deleted $((2 - $(count XB pim))) items"
rm -f "$T/XA/data/contacts/"*
expect_exit 3 ss --home "$T/XA" sync
last_says "would delete"
sync_ok XB
[ "$(count XB pim)" = 2 ] && [ "$(count XB contacts)" = 5 ] \
    || fail "an emptied folder deleted items: pim $(count XB pim), contacts $(count XB contacts)"
expect_exit 0 ss --home "$T/XA" sync --allow-delete
sync_ok XB
[ "$(count XB pim)" = 0 ] && [ "$(count XB contacts)" = 0 ] || fail "confirmed deletions did not go"
ok "emptied folders (2 and 5 items): exit 3, nothing deleted until --allow-delete"

# ------------------------------------------------------ subscriber IDs hidden
# Every subscriber of this test, after registrations, syncs, backups,
# schedules and refusals: not in the hub's files, its log, or the bytes a
# sync sent and received (recorded above and here).
SUBS="$SUB_P 44123000972 44123000973 44123000974 44123000975 44123000976 44123000977 44123000978 44123000979 44123000980"
ss --home "$T/hub" hub schedule --subscriber 44123000977 --every 1d >/dev/null \
    || fail "hub schedule"
start_shim cap --record "$T/cap"
put XA contacts cap.vcf "FN:Captured"
sync_ok XA --hub "$SHIM_ADDR"
stop_shims
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null; HUB_PID=
for s in $SUBS; do
    if grep -rla -- "$s" "$T/hub" "$T/hub.log" "$T"/rec.* "$T"/cap.* >"$T/leak"; then
        fail "subscriber $s in clear in: $(tr '\n' ' ' <"$T/leak")"
    fi
done
ok "no subscriber ID in the hub's files, its log or $(cat "$T"/rec.* "$T"/cap.* | wc -c) captured bytes"
