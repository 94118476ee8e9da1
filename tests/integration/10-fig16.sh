#!/usr/bin/env bash
# The FIG 16 story: one SIM moved between terminals A, B, C with edits
# a1, b1, c1, a2, b2 and a deletion; every terminal converges; the hub's
# files never hold plaintext or the subscriber ID.
. "$(dirname "$0")/lib.sh"

start_hub
new_sim sim 440101234567890
for t in A B C; do new_terminal $t; done
insert A sim; register A
insert B sim; register B
insert C sim; register C
for t in B C; do ss --home "$T/$t" sim remove >/dev/null; done

CANARY=canary-7f3e9b2d-plaintext

# T0-T1: SIM in A, a1 made, uploaded when the SIM leaves.
put A contacts a1.vcf "BEGIN:VCARD
FN:Alice $CANARY
END:VCARD"
sync_ok A; ss --home "$T/A" sim remove >/dev/null
# T2: SIM into B: a1 arrives; b1 made and uploaded.
insert B sim; sync_ok B
[ -f "$T/B/data/contacts/a1.vcf" ] || fail "a1 did not reach B"
put B pim b1.ics "BEGIN:VCALENDAR
SUMMARY:Dentist
END:VCALENDAR"
sync_ok B; ss --home "$T/B" sim remove >/dev/null
# T3: SIM into C: a1 + b1 arrive; c1 made and uploaded.
insert C sim; sync_ok C
[ -f "$T/C/data/pim/b1.ics" ] || fail "b1 did not reach C"
put C browser c1.url "https://example.org/c1"
sync_ok C; ss --home "$T/C" sim remove >/dev/null
# Back to A: b1 + c1 arrive; a2 edits a1; c1 deleted.
insert A sim; sync_ok A
[ -f "$T/A/data/browser/c1.url" ] || fail "c1 did not reach A"
put A contacts a1.vcf "BEGIN:VCARD
FN:Alice (a2) $CANARY
END:VCARD"
rm "$T/A/data/browser/c1.url"
sync_ok A; ss --home "$T/A" sim remove >/dev/null
# B: a2 and the deletion arrive; b2 made.
insert B sim; sync_ok B
grep -q "(a2)" "$T/B/data/contacts/a1.vcf" || fail "a2 did not reach B"
[ ! -e "$T/B/data/browser/c1.url" ] || fail "deletion of c1 did not reach B"
put B contacts b2.vcf "BEGIN:VCARD
FN:Bob
END:VCARD"
sync_ok B
# A delta, not a full copy: B's last upload carried one change.
ss --home "$T/B" --json sync >"$T/b.json"
grep -q '"sent_items":0' "$T/b.json" || fail "idle sync sent items: $(cat "$T/b.json")"
ss --home "$T/B" sim remove >/dev/null
# Everyone catches up.
for t in C A; do insert $t sim; sync_ok $t; ss --home "$T/$t" sim remove >/dev/null; done
for cls in contacts pim browser; do same_tree A B $cls; same_tree A C $cls; done
[ -f "$T/C/data/contacts/b2.vcf" ] || fail "b2 did not reach C"
ok "A, B and C converged after the FIG 16 sequence"

# The hub never sees plaintext or the subscriber ID.
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null; HUB_PID=
if grep -rqa "$CANARY" "$T/hub"; then fail "plaintext canary found in hub files"; fi
if grep -rqa "440101234567890" "$T/hub" "$T/hub.log"; then
    fail "subscriber ID in clear in hub files"; fi
if grep -rqa "Alice" "$T/hub"; then fail "a contact name found in hub files"; fi
ok "hub files hold no plaintext and no subscriber ID"
