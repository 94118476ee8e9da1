#!/usr/bin/env bash
# One contact edited on two terminals at once: both versions survive (one
# as a conflict copy with the same name everywhere), the inbox lists it,
# and resolving it on one terminal converges everywhere.
. "$(dirname "$0")/lib.sh"

start_hub
new_sim sim 26201555000111
for t in A B; do new_terminal $t; insert $t sim; register $t; done
put A contacts carol.vcf "FN:Carol"
sync_ok A; sync_ok B
put A contacts carol.vcf "FN:Carol (edited on A)"
put B contacts carol.vcf "FN:Carol (edited on B)"
sync_ok A; sync_ok B; sync_ok A
same_tree A B contacts
n=$(ls "$T/A/data/contacts" | grep -c 'carol.conflict-.*\.vcf$')
[ "$n" = 1 ] || fail "expected one conflict copy, found $n"
cat "$T/A/data/contacts/"* | grep -q "edited on A" || fail "A's edit lost"
cat "$T/A/data/contacts/"* | grep -q "edited on B" || fail "B's edit lost"
ok "concurrent edits kept both, same copy on both terminals"

ss --home "$T/A" --json conflicts >"$T/c.json"
grep -q '"name":"carol.vcf"' "$T/c.json" || fail "inbox: $(cat "$T/c.json")"
expect_exit 2 ss --home "$T/A" conflicts resolve carol.vcf --keep mine
expect_exit 2 ss --home "$T/A" conflicts resolve contacts/carol.vcf --keep nobody
expect_exit 0 ss --home "$T/A" conflicts resolve contacts/carol.vcf --keep mine
grep -q "edited on A" "$T/A/data/contacts/carol.vcf" || fail "keep mine on A"
[ "$(ls "$T/A/data/contacts" | wc -l)" = 1 ] || fail "copy not removed"
sync_ok A; sync_ok B
same_tree A B contacts
ss --home "$T/B" --json conflicts | grep -q '"conflicts":\[\]' \
    || fail "B still lists the conflict"
ok "resolving on A converged on B"
