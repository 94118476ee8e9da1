#!/usr/bin/env bash
# Collective erase (seed 003 FIG 20): the SIM binding is checked first, the
# pending edits reach the hub before anything is wiped, the wipe leaves an
# empty home that can be set up again, a kill -9 at any step leaves either
# an intact terminal or a finishable wipe (and then the hub already has
# everything), and --force erases without the hub only when confirmed.
. "$(dirname "$0")/lib.sh"

json_field() { printf '%s' "$1" | grep -o "\"$2\":[a-z0-9]*" | head -n1 | cut -d: -f2; }

# intact NAME EXPECT: terminal NAME still holds its data (as in the folder
# EXPECT), its keys, store, config and binding, and no erase marker.
intact() {
    diff -r "$2" "$T/$1/data" >/dev/null || { diff -r "$2" "$T/$1/data" >&2; fail "$1's data changed"; }
    for f in config node.key datakey.box password binding sim store/data.mdb; do
        [ -s "$T/$1/$f" ] || fail "$1 lost $f"
    done
    [ ! -e "$T/$1/erase.pending" ] || fail "$1 has an erase marker"
}

# wiped NAME: nothing of the node is left in its home (which stays).
wiped() {
    [ -d "$T/$1" ] || fail "the home of $1 was removed"
    left=$(ls -A "$T/$1")
    [ -z "$left" ] || fail "left in $1's home after the erase: $left"
}

start_hub
new_sim sim 44123000555
new_sim other 44123000666
for t in A B; do new_terminal $t; insert $t sim; register $t; done
for i in 1 2 3; do put A contacts "p$i.vcf" "FN:Person $i"; done
put A pim meeting.ics "SUMMARY:Meeting"
mkdir -p "$T/A/data/archive/2026"
head -c 300000 /dev/urandom >"$T/A/data/archive/2026/photo.jpg"
ss --home "$T/A" backup now >/dev/null || fail "backup now"
cp -a "$T/A/data" "$T/gen1"          # what generation 1 holds
sync_ok B
# Pending edits, not yet on the hub: an edit, a new file, a deletion, a
# new large file.
put A contacts p1.vcf "FN:Person 1 edited"
put A contacts p4.vcf "FN:Person 4"
rm "$T/A/data/contacts/p3.vcf"
head -c 100000 /dev/urandom >"$T/A/data/archive/2026/new.jpg"
cp -a "$T/A/data" "$T/expect"

# ---------------------------------------------------------------- usage
expect_exit 2 ss --home "$T/A" erase --bogus
grep -q "unknown option '--bogus'" "$T/last.err" || fail "usage: $(cat "$T/last.err")"
expect_exit 2 ss --home "$T/A" erase now
grep -q "unexpected argument 'now'" "$T/last.err" || fail "usage: $(cat "$T/last.err")"
expect_exit 2 ss --home "$T/A" erase --force=1
intact A "$T/expect"
ok "bad usage exits 2 and touches nothing"

# ------------------------------------------------------- SIM binding
insert A other
expect_exit 3 ss --home "$T/A" erase
grep -q "another subscriber" "$T/last.err" || fail "foreign SIM: $(cat "$T/last.err")"
grep -q "nothing was erased" "$T/last.err" || fail "foreign SIM: $(cat "$T/last.err")"
intact A "$T/expect"
ss --home "$T/A" sim remove >/dev/null || fail "sim remove"
expect_exit 3 ss --home "$T/A" erase --force --yes
grep -q "no SIM inserted" "$T/last.err" || fail "no SIM: $(cat "$T/last.err")"
diff -r "$T/expect" "$T/A/data" >/dev/null || fail "A's data changed"
insert A sim
intact A "$T/expect"
sync_ok B
[ ! -e "$T/B/data/contacts/p4.vcf" ] || fail "a refused erase uploaded A's pending edits"
ok "a foreign or missing SIM: exit 3, nothing erased, nothing uploaded"

# Files in a class this terminal does not sync were never uploaded.
ss --home "$T/A" classes contacts,pim,archive >/dev/null || fail "classes"
put A mail note.eml "Subject: kept"
expect_exit 3 ss --home "$T/A" erase
grep -q "1 file (14 bytes) in mail" "$T/last.err" || fail "unsynced: $(cat "$T/last.err")"
rm "$T/A/data/mail/note.eml"
ss --home "$T/A" classes all >/dev/null || fail "classes all"
intact A "$T/expect"
ok "files in a class not synced: exit 3, nothing erased"

# ------------------------------------------------------ erase, restore
# Symlinks out of the home are removed as links, never followed: a folder
# link inside a class folder, a key file that is a link.
mkdir -p "$T/outside"; echo keep >"$T/outside/keep.txt"; echo secret >"$T/outside/secret"
ln -s "$T/outside" "$T/A/data/archive/2026/outlink"
rm "$T/A/password"
ln -s "$T/outside/secret" "$T/A/password"
# The hub has something A lacks: the erase does not download it.
put B browser from-b.url "https://example.org/made-on-B"
sync_ok B
mkdir -p "$T/expect/browser" && cp "$T/B/data/browser/from-b.url" "$T/expect/browser/"
out=$(ss --home "$T/A" --json erase 2>"$T/last.err") || fail "erase: $out $(cat "$T/last.err")"
[ "$(json_field "$out" offline)" = false ] || fail "erase json: $out"
[ "$(json_field "$out" recv_items)" = 0 ] || fail "the erase downloaded: $out"
[ "$(json_field "$out" lost_items)" = 0 ] || fail "erase json: $out"
[ "$(json_field "$out" sent_items)" -ge 4 ] || fail "the pending edits were not sent: $out"
[ "$(json_field "$out" unregistered)" = true ] || fail "the hub still lists A: $out"
wiped A
[ "$(cat "$T/outside/keep.txt")" = keep ] || fail "the erase followed a symlinked folder"
[ "$(cat "$T/outside/secret")" = secret ] || fail "the erase wrote through a symlinked key file"
sync_ok B
for cls in contacts pim archive; do
    diff -r "$T/expect/$cls" "$T/B/data/$cls" >/dev/null \
        || { diff -r "$T/expect/$cls" "$T/B/data/$cls" >&2; fail "B lacks A's edits in $cls"; }
done
ok "erase uploads the pending edits (B has them byte for byte) and downloads nothing, then wipes the home; symlinks not followed"

# The same home, set up again with the handset's own ID (its IMEI does not
# change) and a new node key, registers again and gets everything back.
ss --home "$T/A" init --role terminal --terminal-id imei-A >/dev/null \
    || fail "init after erase"
insert A sim; register A
sync_ok A
diff -r "$T/expect" "$T/A/data" >/dev/null || { diff -r "$T/expect" "$T/A/data" >&2; fail "re-registered A differs"; }
new_terminal C; insert C sim; register C
ss --home "$T/C" restore 1 >/dev/null || fail "restore 1 on C"
for cls in contacts pim archive; do
    diff -r "$T/gen1/$cls" "$T/C/data/$cls" >/dev/null || fail "generation 1 restored on C differs in $cls"
done
ok "the erased home, registered again, syncs everything back; a generation made before restores on a new terminal"

# The rest uses a second subscriber with little data, so that each new
# terminal's first sync is short; W is its witness terminal.
new_sim sim2 44123000777
new_terminal W; insert W sim2; register W

# ------------------------------------------ an edit during the erase's sync
# Through a slow link (50 ms per piece), write a file once the erase's
# first scan is recorded (status shows it pending): the check after the
# sync finds the new file unacknowledged and syncs a second time.
start_shim slow --delay-ms 50
new_terminal S; insert S sim2
HUB_ADDR=$SHIM_ADDR register S
put S contacts s1.vcf "FN:first"
"$SIMSYNC" --home "$T/S" --json erase >"$T/s.json" 2>"$T/s.err" &
pid=$!
seen=0
for _ in $(seq 1 250); do
    p=$(ss --home "$T/S" --json status 2>/dev/null | grep -o '"name":"contacts"[^}]*' \
        | grep -o '"pending_up":[0-9]*' | cut -d: -f2)
    if [ "${p:-0}" = 1 ]; then seen=1; break; fi
    sleep 0.02
done
[ $seen = 1 ] || fail "never saw the erase's first scan recorded"
put S contacts s2.vcf "FN:written during the erase"
wait $pid || fail "erase with an edit during its sync: $(cat "$T/s.err")"
[ "$(json_field "$(cat "$T/s.json")" sync_rounds)" = 2 ] \
    || fail "the edit during the sync did not bring a second round: $(cat "$T/s.json")"
wiped S
stop_shims
sync_ok W
[ "$(cat "$T/W/data/contacts/s2.vcf" 2>/dev/null)" = "FN:written during the erase" ] \
    || fail "a file written during the erase's sync was wiped unsent"
ok "a file written during the erase's sync is found by the check and sent in a second round"

# -------------------------------------------------------------- kill -9
# Kill the erase at step K (SIMSYNC_TEST_ERASE_KILL_AT: 1 SIM checked, 2
# hub acknowledged, 3 marker written, then one step per removal). After
# each kill: no marker -> the terminal is intact; a marker -> the hub
# already has the edit. Then finish it (erase again, or any command).
k_list="1 2 3 4 6 9 13 18 24 30 37 45 60 80"
done_all=0
for k in $k_list; do
    t=K$k
    new_terminal $t; insert $t sim2; register $t
    put $t contacts "kill$k.vcf" "FN:killed at $k"
    code=0
    # (braces: the shell's own "Killed" notice goes to /dev/null)
    { SIMSYNC_TEST_ERASE_KILL_AT=$k "$SIMSYNC" --home "$T/$t" erase >"$T/kill.out" 2>&1; } 2>/dev/null || code=$?
    if [ $code = 0 ]; then
        wiped $t
        done_all=1
        echo "step $k is past the end: the erase completed"
        break
    fi
    [ $code = 137 ] || { cat "$T/kill.out" >&2; fail "erase at step $k: exit $code, not killed"; }
    if [ -e "$T/$t/erase.pending" ]; then
        # Wiping began: the hub must have the edit before anything goes.
        sync_ok W
        [ "$(cat "$T/W/data/contacts/kill$k.vcf" 2>/dev/null)" = "FN:killed at $k" ] \
            || fail "killed at step $k while wiping, but the hub lacks the edit"
        if [ $((k % 2)) = 0 ]; then
            expect_exit 3 ss --home "$T/$t" status
            grep -q "interrupted; it is finished now" "$T/last.err" || fail "status after kill: $(cat "$T/last.err")"
        else
            expect_exit 0 ss --home "$T/$t" erase
            grep -q "Finished an erase" "$T/last.out" || fail "erase after kill: $(cat "$T/last.out")"
        fi
        wiped $t
        expect_exit 1 ss --home "$T/$t" status   # now plainly not initialised
        echo "killed at step $k while wiping: hub had the edit; finished"
    else
        [ "$(cat "$T/$t/data/contacts/kill$k.vcf")" = "FN:killed at $k" ] || fail "step $k: edit lost"
        for f in config node.key datakey.box binding store/data.mdb; do
            [ -s "$T/$t/$f" ] || fail "killed at step $k before wiping, but $f is gone"
        done
        expect_exit 0 ss --home "$T/$t" erase
        wiped $t
        sync_ok W
        [ "$(cat "$T/W/data/contacts/kill$k.vcf" 2>/dev/null)" = "FN:killed at $k" ] \
            || fail "rerun after a kill at step $k: the hub lacks the edit"
        echo "killed at step $k before wiping: intact; erase ran again"
    fi
done
[ $done_all = 1 ] || fail "the last kill step did not reach the end of the erase"

# A real kill -9 from outside, at a random moment of an erase that syncs
# a large file.
new_terminal R; insert R sim2; register R
head -c 4000000 /dev/urandom >"$T/big.bin"
mkdir -p "$T/R/data/archive"; cp "$T/big.bin" "$T/R/data/archive/big.bin"
delay=0.0$((RANDOM % 10))
echo "outside kill -9 after $delay s"
"$SIMSYNC" --home "$T/R" erase >/dev/null 2>&1 &
pid=$!
sleep "$delay"
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
if [ -e "$T/R/erase.pending" ]; then
    sync_ok W
    cmp -s "$T/big.bin" "$T/W/data/archive/big.bin" || fail "killed while wiping, but the hub lacks R's file"
    echo "outside kill -9 hit the wipe"
elif [ -e "$T/R/config" ]; then
    cmp -s "$T/big.bin" "$T/R/data/archive/big.bin" || fail "kill -9 before wiping changed the file"
    echo "outside kill -9 hit before the wipe"
else
    echo "outside kill -9 came after the erase had finished"
fi
ss --home "$T/R" erase >/dev/null 2>"$T/last.err" || [ ! -e "$T/R/config" ] \
    || fail "erase after an outside kill: $(cat "$T/last.err")"
wiped R
sync_ok W
cmp -s "$T/big.bin" "$T/W/data/archive/big.bin" || fail "after a kill -9 and a rerun the hub lacks R's file"
ok "kill -9 at every tested step: intact before the marker, hub complete after it; a rerun or any command finishes"

# ------------------------------------------------------ daemon running
# A running daemon would sync while the folders are wiped: stop it first.
new_terminal Z; insert Z sim2; register Z
"$SIMSYNC" --home "$T/Z" daemon >"$T/Z.daemon" 2>&1 &
ZPID=$!
for _ in $(seq 1 100); do
    ss --home "$T/Z" --json status 2>/dev/null | grep -q '"daemon_running":true' && break
    sleep 0.1
done
expect_exit 3 ss --home "$T/Z" erase
grep -q "the daemon runs on this terminal" "$T/last.err" || fail "daemon: $(cat "$T/last.err")"
[ -e "$T/Z/node.key" ] || fail "erase with a daemon running touched the keys"
kill "$ZPID"; wait "$ZPID" 2>/dev/null
ss --home "$T/Z" erase >/dev/null || fail "erase after the daemon stopped"
ok "a running daemon: erase refused (exit 3) until it stops"

# ------------------------------------------------------- --force offline
new_terminal F; insert F sim2; register F
sync_ok F
put F contacts f1.vcf "FN:offline"          # 11 bytes, never uploaded
cp -a "$T/F/data" "$T/expectF"
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null; HUB_PID=
expect_exit 4 ss --home "$T/F" erase
grep -q "Nothing was erased: 1 local change (11 bytes) is not acknowledged" "$T/last.err" \
    || fail "offline without --force: $(cat "$T/last.err")"
grep -q -- "--force" "$T/last.err" || fail "no hint at --force: $(cat "$T/last.err")"
intact F "$T/expectF"
code=0
echo no | ss --home "$T/F" erase --force >"$T/last.out" 2>"$T/last.err" || code=$?
[ $code = 3 ] || fail "answering no: exit $code"
grep -q "loses 1 local change (11 bytes)" "$T/last.err" || fail "no statement of losses: $(cat "$T/last.err")"
grep -q "not confirmed; nothing was erased" "$T/last.err" || fail "answer no: $(cat "$T/last.err")"
intact F "$T/expectF"
expect_exit 3 ss --home "$T/F" erase --force </dev/null
intact F "$T/expectF"
out=$(ss --home "$T/F" --json erase --force --yes 2>"$T/force.err") || fail "erase --force --yes: $out $(cat "$T/force.err")"
[ "$(json_field "$out" offline)" = true ] || fail "force json: $out"
[ "$(json_field "$out" lost_items)" = 1 ] || fail "force json: $out"
[ "$(json_field "$out" lost_bytes)" = 11 ] || fail "force json: $out"
grep -q "loses 1 local change (11 bytes)" "$T/force.err" || fail "no statement of losses: $(cat "$T/force.err")"
wiped F
ok "--force offline: no (or no answer) touches nothing; --yes wipes and reports 1 change, 11 bytes lost"

