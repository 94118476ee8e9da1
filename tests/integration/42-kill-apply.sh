#!/usr/bin/env bash
# Kill loop, receiver side (delta apply): A uploads a round of changes, B
# downloads them and is SIGKILLed at random moments until its sync
# completes. After every kill each file B shows has, at that path, the
# content A had there before the round or after it (nothing half-written
# under an item's name, nothing older come back); after every round B
# equals A.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/killlib.sh"

start_hub
new_sim sim 44123000960
for t in A B; do new_terminal $t; insert $t sim; register $t; done
mkdir -p "$T/A/data/contacts" "$T/A/data/archive"
for i in $(seq 1 400); do echo "BEGIN:VCARD c$i r0" >"$T/A/data/contacts/c$i.vcf"; done
for i in $(seq 1 6); do head -c 150000 /dev/urandom >"$T/A/data/archive/p$i.jpg"; done
sync_ok A
tree_sums "$T/A/data" >"$T/before"
kill_calibrate "$T/B"
round=0
while kills_wanted; do
    round=$((round + 1))
    for i in {1..24}; do
        n=$(( RANDOM % 500 + 1 ))
        echo "BEGIN:VCARD c$n r$round" >"$T/A/data/contacts/c$n.vcf"
    done
    gone=()
    for i in {1..3}; do gone+=("$T/A/data/contacts/c$(( RANDOM % 500 + 1 )).vcf"); done
    rm -f "${gone[@]}"
    p=$(( RANDOM % 6 + 1 ))
    head -c $(( 100000 + RANDOM )) /dev/urandom >"$T/A/data/archive/p$p.jpg"
    sync_ok A
    # B starts the round equal to A's tree before it (checked below), so
    # every file it shows mid-round is from that tree or from A's new one.
    tree_sums "$T/A/data" >"$T/after"
    cat "$T/before" "$T/after" >"$T/known"
    until killed_run ss --home "$T/B" sync; do
        files_known "$T/B/data" "$T/known" \
            || fail "after kill $KILLED B shows a file A did not have before or after round $round"
    done
    diff -r "$T/A/data" "$T/B/data" >"$T/diff.out" \
        || fail "round $round: B differs from A: $(head -n 5 "$T/diff.out")"
    mv "$T/after" "$T/before"
done
ok "$KILLED kills over $round rounds ($(kill_summary)): no half-written or stale file, B equals A after every round"
