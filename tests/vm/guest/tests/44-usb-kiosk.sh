#!/bin/sh
# The shop kiosk over USB (issue 5 items 6 and 7): a hub on 127.0.0.1
# issues a kiosk credential; the kiosk K (the USB host) reads the terminal
# ID and node key of a new handset H that offers them over its gadget
# ('kiosk offer --listen usb-gadget' on H, 'kiosk register --terminal usb'
# on K), checks the PIN on the SIM and registers H at the hub without a
# terminal password. H completes with 'register --kiosk' and syncs the
# subscriber's data; 'hub audit' shows the registration. Refused: a kiosk
# whose credential the hub removed (exit 3, audited), after which that
# handset cannot complete either (exit 3).
. /lib/vm/simsync.sh
. /lib/vm/usb.sh
. /lib/vm/kiosk.sh
trap 'stop_bg' EXIT
usb_check
start_hub
new_sim sim $SUB
terminal T1 sim
put T1 contacts alice.vcf "BEGIN:VCARD
FN:Alice
END:VCARD"
sync_ok T1

kiosks 2
ok "the hub issued two kiosk credentials"

# ------------------------------------------------------- a registration
offer H usb-gadget
kreg K1 usb >"$T/kreg.out" 2>&1 || { cat "$T/kreg.out" "$T/offer-H.out"; fail "kiosk register over USB"; }
offer_end H
[ ! -e "$GADGET" ] || fail "H's offer left its gadget behind"
grep -q "Registered terminal imei-H" "$T/kreg.out" || fail "K1: $(cat "$T/kreg.out")"
grep -q "$SUB" "$T/kreg.out" && fail "the kiosk printed the subscriber ID"
key=$(ss --home "$T/H" --json id | sed -n 's/.*"node_key":"\([0-9a-f]*\)".*/\1/p')
[ -n "$key" ] || fail "no node key from H"
ok "K1 read H's terminal ID and node key over USB and registered it"

complete H
cmp "$T/T1/data/contacts/alice.vcf" "$T/H/data/contacts/alice.vcf" ||
    fail "H did not get the subscriber's data"
put H contacts bob.vcf "FN:Bob"
sync_ok H
sync_ok T1
[ -f "$T/T1/data/contacts/bob.vcf" ] || fail "T1 did not get H's edit"
ok "H completed with the recovery secret, no password, and syncs both ways"

audit
grep '"kiosk":"shop-1","terminal_id":"imei-H",' "$T/audit.out" |
    grep -q '"result":"registered"' ||
    { cat "$T/audit.out"; fail "the audit lacks H's registration"; }
grep -q "$SUB" "$T/audit.out" && fail "the audit shows the subscriber ID"
ss --home "$T/T1" notices | grep -q "registered a new terminal" ||
    fail "T1 got no notice: $(ss --home "$T/T1" notices)"
ok "hub audit lists the registration; T1 got the notice"

# ------------------------------------------------------- a removed kiosk
ss --home "$T/hub" hub kiosk remove shop-2 >/dev/null || fail "kiosk remove"
offer H2 usb-gadget
expect_exit 3 kreg K2 usb
grep -q "was removed" "$T/last.err" || fail "K2: $(cat "$T/last.err")"
offer_end H2
[ ! -e "$GADGET" ] || fail "H2's offer left its gadget behind"
SIMSYNC_PIN=1234 ss --home "$T/H2" sim insert "$T/sim.sim" >/dev/null ||
    fail "sim insert into H2"
SIMSYNC_RECOVERY=rec-secret SIMSYNC_PIN=1234 expect_exit 3 ss --home "$T/H2" \
    register --kiosk --hub "$HUB_ADDR" --hub-id "$HUB_ID"
audit
grep '"kiosk":"shop-2","terminal_id":"imei-H2",' "$T/audit.out" |
    grep -q '"result":"refused".*removed' ||
    { cat "$T/audit.out"; fail "the audit lacks the refusal"; }
ok "a removed kiosk is refused over USB too (exit 3, audited); H2 cannot complete"
