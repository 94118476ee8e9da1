#!/usr/bin/env bash
# The replica cap: a subscriber's knowledge keeps one entry for every
# replica (terminal store) that ever made a change, up to 4,096 (vv.h).
# A new registration or an erase adds one, so a subscriber could in the
# end have more. Past the cap a sync must fail with a reason on both
# sides, not with a connection the hub closed in silence (which is what
# the erase kill loop met after 4,096 rounds), and nothing may be lost.
. "$(dirname "$0")/lib.sh"
HUBTAMPER=${HUBTAMPER:-$(dirname "$LINKSHIM")/hubtamper}
[ -x "$HUBTAMPER" ] || fail "no hubtamper at $HUBTAMPER"

start_hub
new_sim sim 44123000970
new_terminal A; insert A sim; register A
put A contacts a.vcf "BEGIN:VCARD a"
sync_ok A

# 4,000 replicas more: under the cap, the sync still goes through.
"$HUBTAMPER" "$T/hub" replicas 4000 2>"$T/tamper.err" || fail "replicas: $(cat "$T/tamper.err")"
put A contacts b.vcf "BEGIN:VCARD b"
sync_ok A
ok "a subscriber with 4,000 replicas and more syncs"

# 200 more: past 4,096. The hub says why, and logs it.
"$HUBTAMPER" "$T/hub" replicas 4200 2>"$T/tamper.err" || fail "replicas: $(cat "$T/tamper.err")"
put A contacts c.vcf "BEGIN:VCARD c"
expect_exit 5 ss --home "$T/A" sync
grep -q "the hub reports: .*more than 4096 replicas" "$T/last.err" \
    || fail "the sync failure does not give the hub's reason: $(cat "$T/last.err")"
grep -q "link closed" "$T/last.err" && fail "the sync failed as a lost link: $(cat "$T/last.err")"
grep -q "sync terminal imei-A: cannot start: .*more than 4096 replicas" "$T/hub.log" \
    || fail "the hub did not log why it could not start the session"
ok "past 4,096 replicas a sync fails with the reason on both sides (exit 5)"

# Nothing was lost: c.vcf is still in A's folder, and the hub kept what
# it had acknowledged (a new terminal of another subscriber is unaffected).
[ "$(cat "$T/A/data/contacts/c.vcf")" = "BEGIN:VCARD c" ] || fail "A lost c.vcf"
new_sim other 44123000971
new_terminal B; insert B other; register B
put B contacts x.vcf "BEGIN:VCARD x"
sync_ok B
ok "A keeps its files; another subscriber on the same hub syncs"
