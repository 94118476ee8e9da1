#!/usr/bin/env bash
# Two backups of one subscriber at once (two of its terminals, or a
# terminal whose killed attempt the hub is still finishing) must both
# make a generation: the hub takes one upload per subscriber at a time,
# and the second waits for the first instead of being numbered the same
# and refused at its end ("another generation was committed meanwhile").
# Terminal A's link is slowed by linkshim so that its upload is still
# running when B's begins; B's is small and would end first.
. "$(dirname "$0")/lib.sh"

gens() { ss --home "$T/$1" --json backup list | grep -o '"generation":' | wc -l; }
hub_chunks() { ss --home "$T/hub" --json hub stats | grep -o '"chunks":[0-9]*' | cut -d: -f2; }

start_hub
start_shim slow --rate 2000000
new_sim sim 44123000777
new_terminal A; insert A sim
HUB_ADDR=$SHIM_ADDR register A # A reaches the hub through the shim
new_terminal B; insert B sim; register B
mkdir -p "$T/A/data/archive"
head -c 6000000 /dev/urandom >"$T/A/data/archive/big.bin"
put A contacts a.vcf "FN:A"
put B contacts b.vcf "FN:B"

"$SIMSYNC" --home "$T/A" --json backup now >"$T/a.out" 2>&1 &
APID=$!
# B begins while A's chunks are still crossing the slow link.
for _ in $(seq 1 200); do
    [ "$(hub_chunks)" -ge 8 ] && break
    sleep 0.05
done
kill -0 "$APID" 2>/dev/null || fail "A's backup ended before B's began: $(cat "$T/a.out")"
bout=$(ss --home "$T/B" --json backup now 2>&1) || fail "B's backup: $bout"
wait "$APID" || fail "A's backup: $(cat "$T/a.out")"
aout=$(cat "$T/a.out")
ga=$(printf '%s' "$aout" | grep -o '"generation":[0-9]*' | cut -d: -f2)
gb=$(printf '%s' "$bout" | grep -o '"generation":[0-9]*' | cut -d: -f2)
[ "$(gens A)" = 2 ] || fail "$(gens A) generations listed, not 2"
[ "$ga" = 1 ] && [ "$gb" = 2 ] || fail "A made generation $ga, B $gb: B did not wait for A"
ok "A (slow link) made generation $ga, B (begun meanwhile) waited and made $gb"

# An upload that stays open longer than the hub's wait (10 s): the other
# terminal's backup is refused as busy (exit 3) with the hub's reason,
# and makes no generation; once the slow one is gone, it goes through.
# (30 MB through A's link of 2 MB/s: about 15 s.)
head -c 30000000 /dev/urandom >"$T/A/data/archive/big2.bin"
"$SIMSYNC" --home "$T/A" backup now >"$T/a2.out" 2>&1 &
APID=$!
c0=$(hub_chunks)
for _ in $(seq 1 200); do
    [ "$(hub_chunks)" -gt "$c0" ] && break
    sleep 0.05
done
put B contacts b2.vcf "FN:B2"
code=0
ss --home "$T/B" backup now >"$T/b2.out" 2>&1 || code=$?
[ "$code" = 3 ] || fail "B beside a long upload: exit $code: $(cat "$T/b2.out")"
grep -q "still running on the hub" "$T/b2.out" \
    || fail "B's refusal does not say why: $(cat "$T/b2.out")"
[ "$(gens B)" = 2 ] || fail "a refused backup left a generation"
kill -9 "$APID"; wait "$APID" 2>/dev/null
out=$(ss --home "$T/B" --json backup now) || fail "B after A was killed: $out"
[ "$(gens B)" = 3 ] || fail "B's backup after A was killed made no generation"
ok "beside an upload longer than the wait: exit 3, the hub's reason shown, no generation; then it went through"
stop_shims
