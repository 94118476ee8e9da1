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

# gens: the numbers of the generations the hub lists, one a line.
gens() {
    ss --home "$T/A" --json backup list >"$T/gl.json" 2>"$T/gl.err" \
        || fail "backup list: $(cat "$T/gl.err")"
    grep -o '"generation":[0-9]*' "$T/gl.json" | cut -d: -f2
}

start_hub
new_sim sim 44123000960
new_terminal A; insert A sim; register A
mkdir -p "$T/A/data/contacts" "$T/A/data/archive"
for i in $(seq 1 300); do echo "BEGIN:VCARD c$i r0" >"$T/A/data/contacts/c$i.vcf"; done
kill_calibrate "$T/A"
round=0
have=0
while kills_wanted; do
    round=$((round + 1))
    for i in {1..40}; do
        n=$(( RANDOM % 300 + 1 ))
        echo "BEGIN:VCARD c$n r$round" >"$T/A/data/contacts/c$n.vcf"
    done
    head -c $(( 200000 + RANDOM )) /dev/urandom >"$T/A/data/archive/r$round.jpg"
    rm -f "$T/A/data/archive/r$((round - 2)).jpg"
    start=$have
    while ! killed_run ss --home "$T/A" backup now; do
        # Generations are numbered 1, 2, ... with no gap; every one listed
        # that was not checked yet opens.
        listed=$(gens)
        n=0
        for g in $listed; do
            n=$((n + 1))
            [ "$g" = "$n" ] || fail "after kill $KILLED the list is $(echo $listed): number $n missing"
            [ "$g" -gt "$have" ] || continue
            ss --home "$T/A" backup show "$g" >/dev/null 2>"$T/show.err" \
                || fail "after kill $KILLED generation $g is listed but not whole: $(cat "$T/show.err")"
        done
        [ "$n" -ge "$have" ] || fail "after kill $KILLED: $n generations listed, $have before"
        have=$n
    done
    have=$(gens | wc -l)
    [ "$have" -gt "$start" ] || fail "round $round: $have generations, $start before it"
    files=$(find "$T/A/data" -type f | wc -l)
    items=$(ss --home "$T/A" backup show "$have" | grep -c .)
    [ "$items" -eq "$files" ] || fail "generation $have holds $items items for $files files"
done
ok "$KILLED kills over $round rounds ($(kill_summary)): only whole generations, at least one more per round"
