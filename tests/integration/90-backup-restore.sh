#!/usr/bin/env bash
# Backup generations made by the terminal, listed and shown, restored onto a
# freshly registered terminal (recovery secret) and selectively onto the
# same terminal with each on-conflict mode.
. "$(dirname "$0")/lib.sh"

json_field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2; }

start_hub
new_sim sim 44123000333
new_terminal A; insert A sim; register A
for i in 1 2 3 4 5; do put A contacts "p$i.vcf" "FN:Person $i"; done
put A pim meeting.ics "SUMMARY:Meeting"
mkdir -p "$T/A/data/archive/2026"
head -c 2000000 /dev/urandom >"$T/A/data/archive/2026/photo.jpg"

out=$(ss --home "$T/A" --json backup now) || fail "backup now: $out"
[ "$(json_field "$out" generation)" = 1 ] || fail "first generation: $out"
[ "$(json_field "$out" items)" = 7 ] || fail "items in generation 1: $out"
sent=$(json_field "$out" chunk_bytes_sent)
[ "$sent" -ge 2000000 ] || fail "the photo's chunks were not sent: $out"
out=$(ss --home "$T/A" --json backup now) || fail "second backup: $out"
[ "$(json_field "$out" generation)" = 2 ] || fail "second generation: $out"
[ "$(json_field "$out" chunk_bytes_sent)" = 0 ] \
    || fail "the second backup of an unchanged terminal sent chunk data: $out"
ok "two generations; the second uploads no chunk data (first sent $sent bytes)"

list=$(ss --home "$T/A" --json backup list) || fail "backup list"
[ "$(printf '%s' "$list" | grep -o '"generation":' | wc -l)" = 2 ] || fail "list: $list"
ss --home "$T/A" backup show 1 >"$T/show.txt" || fail "backup show"
grep -q "archive/2026/photo.jpg  2000000 bytes" "$T/show.txt" || fail "show: $(cat "$T/show.txt")"
ok "list shows 2 generations; show lists the items"

# A replacement terminal: registered with the recovery secret, restores
# everything, byte for byte.
new_terminal C; insert C sim; register C
ss --home "$T/C" restore 2 >"$T/restore.txt" || fail "restore on C: $(cat "$T/restore.txt")"
for cls in contacts pim archive; do same_tree A C $cls; done
ok "restore onto a new terminal with the recovery secret: identical folders"

# Selective restore on A with each on-conflict mode.
put A contacts p1.vcf "FN:Person 1 edited"
put A contacts p2.vcf "FN:Person 2 edited"
put A contacts p3.vcf "FN:Person 3 edited"
rm "$T/A/data/contacts/p4.vcf"
expect_exit 3 ss --home "$T/A" restore 1 --item contacts/p1.vcf </dev/null
grep -q "on-conflict" "$T/last.err" || fail "no hint: $(cat "$T/last.err")"
grep -q "edited" "$T/A/data/contacts/p1.vcf" || fail "ask without a terminal changed p1"
ss --home "$T/A" restore 1 --item contacts/p1.vcf --on-conflict overwrite >/dev/null \
    || fail "overwrite"
[ "$(cat "$T/A/data/contacts/p1.vcf")" = "FN:Person 1" ] || fail "p1 not overwritten"
ss --home "$T/A" restore 1 --item contacts/p2.vcf --on-conflict keep-both >/dev/null \
    || fail "keep-both"
grep -q "edited" "$T/A/data/contacts/p2.vcf" || fail "keep-both replaced p2"
[ "$(cat "$T/A/data/contacts/p2.restored-001.vcf")" = "FN:Person 2" ] || fail "no restored copy of p2"
ss --home "$T/A" restore 1 --classes contacts --on-conflict skip >"$T/skip.txt" \
    || fail "skip"
grep -q "edited" "$T/A/data/contacts/p3.vcf" || fail "skip replaced p3"
[ "$(cat "$T/A/data/contacts/p4.vcf")" = "FN:Person 4" ] || fail "deleted p4 not restored"
[ ! -e "$T/A/data/pim/meeting.ics.restored-001" ] || fail "--classes contacts touched pim"
ok "selective restore: ask (no terminal: exit 3, untouched), overwrite, keep-both, skip"

# Restored items are local changes: they sync to other terminals.
# C never had p2.restored-001.vcf: only a sync can bring it.
sync_ok A; sync_ok C
[ "$(cat "$T/C/data/contacts/p2.restored-001.vcf" 2>/dev/null)" = "FN:Person 2" ] \
    || fail "the restored copy did not sync to C"
[ "$(cat "$T/C/data/contacts/p1.vcf")" = "FN:Person 1" ] || fail "restored p1 did not sync"
sync_ok A   # C's own restore (local edits there) comes back to A
same_tree A C contacts
ok "restored items sync like edits"
