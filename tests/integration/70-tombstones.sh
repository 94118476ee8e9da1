#!/usr/bin/env bash
# Tombstones are purged once every registered terminal has acknowledged
# them: on the hub and on the terminals. A terminal that does not sync the
# class holds the purge back; a name re-created after the purge syncs as
# a new item.
. "$(dirname "$0")/lib.sh"

# json_field JSON KEY: the first numeric value of "KEY" in a JSON text.
json_field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2; }
hub_tombs() { json_field "$(ss --home "$T/hub" --json hub stats)" tombstones; }
# term_tombs NAME: tombstones of the contacts class on terminal NAME.
term_tombs() {
    ss --home "$T/$1" --json status | grep -o '"name":"contacts"[^}]*' \
        | grep -o '"tombstones":[0-9]*' | cut -d: -f2
}

start_hub
new_sim sim 44123000111
for t in A B C; do new_terminal $t; insert $t sim; register $t; done
new_terminal D; insert D sim; register D --classes pim
put A contacts x.vcf "FN:Xavier"
put A contacts y.vcf "FN:Yvonne"
sync_ok A; sync_ok B; sync_ok C; sync_ok D
rm "$T/A/data/contacts/x.vcf"
sync_ok A
[ "$(hub_tombs)" = 1 ] || fail "the hub does not hold the deletion: $(hub_tombs)"
for round in 1 2; do for t in A B C D; do sync_ok $t; done; done
[ ! -e "$T/B/data/contacts/x.vcf" ] || fail "the deletion did not reach B"
[ "$(hub_tombs)" = 1 ] \
    || fail "purged although D (pim only) never acknowledged contacts"
ok "a terminal that does not sync the class holds the purge back"

ss --home "$T/D" classes contacts,pim >/dev/null || fail "classes on D"
for round in 1 2 3; do for t in A B C D; do sync_ok $t; done; done
[ "$(hub_tombs)" = 0 ] || fail "hub still holds $(hub_tombs) tombstones"
for t in A B C D; do
    [ "$(term_tombs $t)" = 0 ] || fail "$t still holds $(term_tombs $t) tombstones"
done
grep -q "purged 1 tombstones" "$T/hub.log" || fail "the hub did not log the purge"
for t in B C D; do same_tree A $t contacts; done
[ ! -e "$T/D/data/contacts/x.vcf" ] || fail "the purged item came back on D"
ok "the tombstone is purged everywhere once all four terminals have it"

put B contacts x.vcf "FN:Xavier again"
sync_ok B; sync_ok A
grep -q "Xavier again" "$T/A/data/contacts/x.vcf" || fail "the re-created name did not sync"
ok "a name re-created after the purge syncs as a new item"
