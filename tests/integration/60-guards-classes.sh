#!/usr/bin/env bash
# Per-terminal class selection, and the mass-delete guard: a missing class
# folder never deletes anything, and a sync that would delete more than half
# of a class stops (exit 3) until confirmed.
. "$(dirname "$0")/lib.sh"

start_hub
new_sim sim 44123456789
new_terminal A; insert A sim; register A --classes contacts
new_terminal B; insert B sim; register B
for i in 1 2 3 4 5 6; do put B contacts "p$i.vcf" "FN:Person $i"; done
put B pim meeting.ics "SUMMARY:Meeting"
sync_ok B; sync_ok A
[ "$(ls "$T/A/data/contacts" | wc -l)" = 6 ] || fail "A did not get the contacts"
[ ! -e "$T/A/data/pim/meeting.ics" ] || fail "A got pim although it syncs contacts only"
put A pim local.ics "SUMMARY:Only on A"
sync_ok A; sync_ok B
[ ! -e "$T/B/data/pim/local.ics" ] || fail "A uploaded a class it does not sync"
ok "class selection: A syncs contacts only, both ways"

# A missing folder is not a deletion.
new_terminal C; insert C sim; register C --classes contacts
sync_ok C
rm -rf "$T/C/data/contacts"
sync_ok C; sync_ok C; sync_ok B
[ "$(ls "$T/B/data/contacts" | wc -l)" = 6 ] || fail "a missing folder deleted contacts"
ok "a missing class folder deletes nothing"

# Deleting 4 of 6 stops and asks.
for i in 1 2 3 4; do rm "$T/B/data/contacts/p$i.vcf"; done
expect_exit 3 ss --home "$T/B" sync
grep -q -- "--allow-delete" "$T/last.err" || fail "no hint: $(cat "$T/last.err")"
sync_ok A
[ "$(ls "$T/A/data/contacts" | wc -l)" = 6 ] || fail "deletions leaked before confirmation"
sync_ok B --allow-delete
sync_ok A
[ "$(ls "$T/A/data/contacts" | wc -l)" = 2 ] || fail "confirmed deletions did not arrive"
ok "mass deletion stops with exit 3 and goes through when confirmed"
