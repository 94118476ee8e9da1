#!/usr/bin/env bash
# Kill loop, receiver side (delta apply): A uploads a round of changes, B
# downloads them and is SIGKILLed at random moments until its sync
# completes. After every kill each file B shows has a content A wrote at
# that path (nothing half-written under an item's name); after every round
# B equals A.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/killlib.sh"

start_hub
new_sim sim 44123000960
for t in A B; do new_terminal $t; insert $t sim; register $t; done
mkdir -p "$T/A/data/contacts" "$T/A/data/archive"
for i in $(seq 1 400); do echo "BEGIN:VCARD c$i r0" >"$T/A/data/contacts/c$i.vcf"; done
for i in $(seq 1 6); do head -c 150000 /dev/urandom >"$T/A/data/archive/p$i.jpg"; done
sync_ok A
tree_sums "$T/A/data" >"$T/known"
round=0
while [ $KILLED -lt "$KILLS" ]; do
    round=$((round + 1))
    for i in $(seq 1 80); do
        n=$(( RANDOM % 500 + 1 ))
        echo "BEGIN:VCARD c$n r$round" >"$T/A/data/contacts/c$n.vcf"
    done
    for i in $(seq 1 10); do rm -f "$T/A/data/contacts/c$(( RANDOM % 500 + 1 )).vcf"; done
    p=$(( RANDOM % 6 + 1 ))
    head -c $(( 100000 + RANDOM )) /dev/urandom >"$T/A/data/archive/p$p.jpg"
    sync_ok A
    tree_sums "$T/A/data" >>"$T/known"
    sort -u -o "$T/known" "$T/known"
    until killed_run ss --home "$T/B" sync; do
        files_known "$T/B/data" "$T/known" \
            || fail "after kill $KILLED B shows a file A never wrote"
    done
    for cls in contacts archive; do same_tree A B $cls; done
done
ok "$KILLED kills over $round rounds ($RUNS runs): no half-written file, B equals A after every round"
