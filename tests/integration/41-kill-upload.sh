#!/usr/bin/env bash
# Kill loop, sender side (journal commits): terminal A scans and uploads a
# round of edits, additions and deletions; its sync is SIGKILLed at random
# moments and started again until it completes. After every kill A's store
# opens and answers; after every completed round B syncs and has exactly
# A's tree (no acknowledged change lost, none duplicated).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/killlib.sh"

start_hub
new_sim sim 44123000960
for t in A B; do new_terminal $t; insert $t sim; register $t; done
mkdir -p "$T/A/data/contacts" "$T/A/data/archive"
for i in $(seq 1 400); do echo "BEGIN:VCARD c$i r0" >"$T/A/data/contacts/c$i.vcf"; done
kill_calibrate "$T/A"
round=0
while kills_wanted; do
    round=$((round + 1))
    for i in {1..60}; do
        n=$(( RANDOM % 600 + 1 ))
        echo "BEGIN:VCARD c$n r$round" >"$T/A/data/contacts/c$n.vcf"
    done
    gone=()
    for i in {1..10}; do gone+=("$T/A/data/contacts/c$(( RANDOM % 600 + 1 )).vcf"); done
    rm -f "${gone[@]}"
    head -c $(( 70000 + RANDOM )) /dev/urandom >"$T/A/data/archive/r$round.jpg"
    rm -f "$T/A/data/archive/r$((round - 3)).jpg"
    until killed_run ss --home "$T/A" sync; do
        ss --home "$T/A" --json status >/dev/null 2>"$T/st.err" \
            || fail "A's store does not open after kill $KILLED: $(cat "$T/st.err")"
    done
    sync_ok B
    diff -r "$T/A/data" "$T/B/data" >"$T/diff.out" \
        || fail "round $round: B differs from A: $(head -n 5 "$T/diff.out")"
done
ok "$KILLED kills over $round rounds ($(kill_summary)): every round completed, B equals A"
