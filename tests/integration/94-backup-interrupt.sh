#!/usr/bin/env bash
# A backup killed with SIGKILL leaves no generation, and the next attempt
# resumes: it re-sends at most one chunk. Edits made while a backup runs
# are not in that generation (its read snapshot) and are in the next one,
# and a sync during the backup is not blocked by it. The link is slowed by
# linkshim so that "during" is a few seconds long.
. "$(dirname "$0")/lib.sh"

json_field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2; }
hub_chunks() { json_field "$(ss --home "$T/hub" --json hub stats)" chunks; }
gens() { ss --home "$T/$1" --json backup list | grep -o '"generation":' | wc -l; }

start_hub
start_shim slow --rate 1500000
new_sim sim 44123000888
new_terminal A; insert A sim
HUB_ADDR=$SHIM_ADDR register A # A reaches the hub through the shim
mkdir -p "$T/A/data/archive"
head -c 9000000 /dev/urandom >"$T/A/data/archive/big.bin"
put A contacts c.vcf "FN:C v1"

# 1. SIGKILL in the middle of the chunk upload.
c0=$(hub_chunks)
"$SIMSYNC" --home "$T/A" backup now >"$T/b1.out" 2>&1 &
BPID=$!
for _ in $(seq 1 200); do
    [ "$(hub_chunks)" -ge $((c0 + 8)) ] && break
    sleep 0.05
done
kill -9 "$BPID"; wait "$BPID" 2>/dev/null
# The shim still delivers what it buffered; the hub commits what arrived
# whole when the connection ends, then logs the failed backup.
for _ in $(seq 1 100); do
    grep -q "backup from terminal imei-A: link closed" "$T/hub.log" && break
    sleep 0.1
done
grep -q "backup from terminal imei-A: link closed" "$T/hub.log" \
    || fail "the hub did not see the backup end: $(tail -3 "$T/hub.log")"
c1=$(hub_chunks)
[ "$c1" -gt "$c0" ] || fail "no chunk arrived before the kill"
[ "$(gens A)" = 0 ] || fail "a killed backup left a generation"
out=$(ss --home "$T/A" --json backup now) || fail "resume: $out"
[ "$(json_field "$out" generation)" = 1 ] || fail "resume made: $out"
sent=$(json_field "$out" chunks_sent)
total=$(( $(hub_chunks) - c0 ))
resent=$(( (c1 - c0) + sent - total ))
[ "$resent" -le 1 ] || fail "resume re-sent $resent chunks ($((c1 - c0)) kept, $sent sent, $total needed)"
ok "killed after $((c1 - c0)) of $total chunks: no generation; resume sent $sent, re-sent $resent"

# 2. Edits during a backup: a new big file to upload slowly, then edits.
head -c 10000000 /dev/urandom >"$T/A/data/archive/big2.bin"
sha_old=$(sha256sum <"$T/A/data/archive/big2.bin")
"$SIMSYNC" --home "$T/A" --json backup now >"$T/b2.json" 2>&1 &
BPID=$!
c2=$(hub_chunks)
for _ in $(seq 1 200); do
    [ "$(hub_chunks)" -ge $((c2 + 3)) ] && break
    sleep 0.05
done
put A contacts c.vcf "FN:C v2"
put A contacts d.vcf "FN:D new"
printf 'appended' >>"$T/A/data/archive/big2.bin"
sha_new=$(sha256sum <"$T/A/data/archive/big2.bin")
# A sync while the backup runs is not blocked by it.
ss --home "$T/A" sync --hub "$HUB_ADDR" >"$T/sync.out" 2>&1 || fail "sync during backup: $(cat "$T/sync.out")"
kill -0 "$BPID" 2>/dev/null || fail "the backup ended before the sync did; the test proves nothing"
wait "$BPID" || fail "backup 2: $(cat "$T/b2.json")"
g2=$(json_field "$(cat "$T/b2.json")" generation)
[ "$g2" = 2 ] || fail "generation 2: $(cat "$T/b2.json")"
# Read the generations back on a fresh terminal (direct to the hub).
new_terminal C; insert C sim; register C
ss --home "$T/C" restore 2 --on-conflict overwrite >/dev/null || fail "restore 2 on C"
[ "$(cat "$T/C/data/contacts/c.vcf")" = "FN:C v1" ] || fail "an edit leaked into generation 2"
[ ! -e "$T/C/data/contacts/d.vcf" ] || fail "a file made during the backup is in generation 2"
if [ -e "$T/C/data/archive/big2.bin" ]; then
    [ "$(sha256sum <"$T/C/data/archive/big2.bin")" = "$sha_old" ] \
        || fail "generation 2 holds a half-edited big2.bin"
fi
g3=$(json_field "$(ss --home "$T/A" --json backup now)" generation)
[ "$g3" = 3 ] || fail "generation 3"
rm -rf "$T/C/data"
ss --home "$T/C" restore 3 >/dev/null || fail "restore 3 on C"
[ "$(cat "$T/C/data/contacts/c.vcf")" = "FN:C v2" ] || fail "generation 3 lacks the edit"
[ "$(cat "$T/C/data/contacts/d.vcf")" = "FN:D new" ] || fail "generation 3 lacks d.vcf"
[ "$(sha256sum <"$T/C/data/archive/big2.bin")" = "$sha_new" ] || fail "generation 3 big2.bin"
ok "edits during backup 2 are not in it and are in generation 3; a sync ran meanwhile"
