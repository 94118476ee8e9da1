#!/usr/bin/env bash
# Kill loop, backup upload: each round A changes files and runs `backup
# now`, SIGKILLed at random moments and started again until a run
# completes. After every kill the hub lists only whole generations (each
# new one opens and checks: manifest digest, key, link to the previous
# one); one may be new when the kill came after the terminal sent its last
# piece (the hub commits it anyway). After every round there is at least
# one generation more, and the newest holds every file of A.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/killlib.sh"

gens() {
    ss --home "$T/A" --json backup list 2>"$T/gl.err" | python3 -c '
import json, sys
print(len(json.load(sys.stdin)["generations"]))' || fail "backup list: $(cat "$T/gl.err")"
}

start_hub
new_sim sim 44123000960
new_terminal A; insert A sim; register A
mkdir -p "$T/A/data/contacts" "$T/A/data/archive"
for i in $(seq 1 300); do echo "BEGIN:VCARD c$i r0" >"$T/A/data/contacts/c$i.vcf"; done
round=0
have=0
while [ $KILLED -lt "$KILLS" ]; do
    round=$((round + 1))
    for i in $(seq 1 40); do
        n=$(( RANDOM % 300 + 1 ))
        echo "BEGIN:VCARD c$n r$round" >"$T/A/data/contacts/c$n.vcf"
    done
    head -c $(( 200000 + RANDOM )) /dev/urandom >"$T/A/data/archive/r$round.jpg"
    rm -f "$T/A/data/archive/r$((round - 2)).jpg"
    while ! killed_run ss --home "$T/A" backup now; do
        now=$(gens)
        [ "$now" -ge "$have" ] || fail "after kill $KILLED: $now generations listed, $have before"
        for g in $(seq $((have + 1)) "$now"); do
            ss --home "$T/A" backup show "$g" >/dev/null 2>"$T/show.err" \
                || fail "after kill $KILLED generation $g is listed but not whole: $(cat "$T/show.err")"
        done
    done
    now=$(gens)
    [ "$now" -gt "$have" ] || fail "round $round: $now generations, $have before it"
    have=$now
    files=$(find "$T/A/data" -type f | wc -l)
    items=$(ss --home "$T/A" backup show "$have" | grep -c .)
    [ "$items" -eq "$files" ] || fail "generation $have holds $items items for $files files"
done
ok "$KILLED kills over $round rounds ($RUNS runs): only whole generations, at least one more per round"
