#!/usr/bin/env bash
# Only the owner: a SIM of another subscriber in a bound terminal, an
# unregistered terminal, a wrong PIN three times, a wrong password, a hub
# with another ID. Each is refused with exit 3 and moves nothing.
. "$(dirname "$0")/lib.sh"

start_hub
new_sim mine 44010000000001
new_sim other 44010000000002
new_terminal A; insert A mine; register A
put A contacts secret.vcf "FN:Secret"
sync_ok A

# Another subscriber's SIM in A: refused, nothing transferred.
new_terminal X; insert X other; register X
put X contacts x.vcf "FN:X"
sync_ok X
ss --home "$T/A" sim remove >/dev/null; insert A other
put A contacts after.vcf "FN:After"
expect_exit 3 ss --home "$T/A" sync
grep -qi "another subscriber" "$T/last.err" || fail "message: $(cat "$T/last.err")"
[ ! -e "$T/A/data/contacts/x.vcf" ] || fail "other subscriber's data downloaded"
ss --home "$T/X" sync >/dev/null
[ ! -e "$T/X/data/contacts/after.vcf" ] && [ ! -e "$T/X/data/contacts/secret.vcf" ] \
    || fail "data crossed subscribers"
ok "another subscriber's SIM in a bound terminal: exit 3, nothing moved"

# The owner's SIM in an unregistered terminal.
new_terminal U; insert U mine
expect_exit 3 ss --home "$T/U" sync
ok "unregistered terminal: exit 3"

# A terminal whose key is not the registered one (same terminal id).
new_terminal A2
sed -i 's/^terminal_id=.*/terminal_id=imei-A/' "$T/A2/config"
insert A2 mine
cp "$T/A/binding" "$T/A2/binding"
cp "$T/A/datakey.box" "$T/A2/datakey.box"
expect_exit 5 ss --home "$T/A2" sync   # its key cannot even open the data key
ok "copied binding without the node key: refused"

# Wrong PIN three times: blocked, the fourth try is not even asked.
new_sim p 44010000000003
expect_exit 3 env SIMSYNC_PIN=0000 "$SIMSYNC" --home "$T/U" sim insert "$T/p.sim"
grep -q "2 tries left" "$T/last.err" || fail "$(cat "$T/last.err")"
expect_exit 3 env SIMSYNC_PIN=0000 "$SIMSYNC" --home "$T/U" sim insert "$T/p.sim"
expect_exit 3 env SIMSYNC_PIN=0000 "$SIMSYNC" --home "$T/U" sim insert "$T/p.sim"
grep -qi "blocked" "$T/last.err" || fail "$(cat "$T/last.err")"
expect_exit 3 env SIMSYNC_PIN=1234 "$SIMSYNC" --home "$T/U" sim insert "$T/p.sim"
grep -qi "blocked" "$T/last.err" || fail "right PIN accepted on a blocked SIM"
if grep -rq "0000" "$T/hub.log"; then fail "PIN logged"; fi
expect_exit 0 ss sim unblock "$T/p.sim" --puk 12345678 --new-pin 4321
expect_exit 0 env SIMSYNC_PIN=4321 "$SIMSYNC" --home "$T/U" sim insert "$T/p.sim"
ok "three wrong PINs block the SIM; the PUK unblocks it"

# Wrong terminal password on a terminal that has one.
ss --home "$T/A" sim remove >/dev/null; insert A mine
expect_exit 3 env SIMSYNC_PIN=1234 SIMSYNC_PASSWORD=wrong SIMSYNC_RECOVERY=rec-secret \
    "$SIMSYNC" --home "$T/A" register --hub "$HUB_ADDR" --hub-id "$HUB_ID"
ok "wrong terminal password: exit 3"

# A hub that is not the pinned one.
expect_exit 3 env SIMSYNC_PIN=1234 SIMSYNC_PASSWORD=pw-A SIMSYNC_RECOVERY=rec-secret \
    "$SIMSYNC" --home "$T/A" register --hub "$HUB_ADDR" \
    --hub-id AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA
ok "hub with another ID: exit 3"

# A second terminal needs the recovery secret to join.
new_terminal B; insert B mine
expect_exit 3 env SIMSYNC_PIN=1234 SIMSYNC_PASSWORD=pw-B SIMSYNC_RECOVERY=wrong \
    "$SIMSYNC" --home "$T/B" register --hub "$HUB_ADDR" --hub-id "$HUB_ID"
ok "wrong recovery secret: exit 3"

# Unreachable hub: exit 4.
expect_exit 4 ss --home "$T/A" sync --hub 127.0.0.1:1
ok "unreachable hub: exit 4"
