#!/usr/bin/env bash
# Kill loop, restore: terminal R restores a generation of A's, SIGKILLed at
# random moments and started again until a run completes. After every kill
# each file R shows is byte for byte the generation's file at that path
# (nothing half-written under an item's name); after every round R's
# folders equal A's at the backup. Each round starts from empty folders.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/killlib.sh"

start_hub
new_sim sim 44123000960
for t in A R; do new_terminal $t; insert $t sim; register $t; done
mkdir -p "$T/A/data/contacts" "$T/A/data/archive"
for i in $(seq 1 150); do echo "BEGIN:VCARD c$i" >"$T/A/data/contacts/c$i.vcf"; done
for i in $(seq 1 4); do head -c 180000 /dev/urandom >"$T/A/data/archive/p$i.jpg"; done
ss --home "$T/A" backup now >/dev/null || fail "backup"
tree_sums "$T/A/data" >"$T/known"
known=$(cat "$T/known")
kill_calibrate "$T/R"
round=0
while kills_wanted; do
    round=$((round + 1))
    rm -rf "$T/R/data/contacts" "$T/R/data/archive"
    until killed_run ss --home "$T/R" restore 1 --on-conflict overwrite; do
        files_known "$T/R/data" "$T/known" \
            || fail "after kill $KILLED R shows a file not in the generation"
    done
    [ "$(tree_sums "$T/R/data")" = "$known" ] \
        || fail "round $round: R's folders differ from the generation"
done
ok "$KILLED kills over $round rounds ($(kill_summary)): no half-written file, every restore completed"
