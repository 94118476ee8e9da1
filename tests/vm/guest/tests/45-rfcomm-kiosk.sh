#!/bin/sh
# The shop kiosk over Bluetooth (issue 5 item 6): a new handset H offers
# its terminal ID and node key on an RFCOMM channel ('kiosk offer --listen
# rfcomm:6'); the kiosk K reads them from H's adapter address ('kiosk
# register --terminal rfcomm:BDADDR:6'), checks the PIN on the SIM and
# registers H at the hub on 127.0.0.1 without a terminal password. H
# completes with 'register --kiosk' and gets the subscriber's data; 'hub
# audit' shows the registration. Refused: the offer read by a kiosk whose
# credential the hub removed (exit 3).
. /lib/vm/simsync.sh
. /lib/vm/bt.sh
. /lib/vm/kiosk.sh
trap 'stop_bg; bt_stop' EXIT

bt_start
bt_up
start_hub
new_sim sim $SUB
terminal T1 sim
put T1 contacts alice.vcf "BEGIN:VCARD
FN:Alice
END:VCARD"
sync_ok T1

kiosks 2

offer H rfcomm:6
kreg K1 "rfcomm:$ADDR_A:6" >"$T/kreg.out" 2>&1 || { cat "$T/kreg.out" "$T/offer-H.out"; fail "kiosk register over RFCOMM"; }
offer_end H
grep -q "Registered terminal imei-H" "$T/kreg.out" || fail "K1: $(cat "$T/kreg.out")"
grep -q "$SUB" "$T/kreg.out" && fail "the kiosk printed the subscriber ID"
ok "K1 read H's terminal ID and node key over RFCOMM and registered it"

complete H
cmp "$T/T1/data/contacts/alice.vcf" "$T/H/data/contacts/alice.vcf" ||
    fail "H did not get the subscriber's data"
audit
grep '"kiosk":"shop-1","terminal_id":"imei-H",' "$T/audit.out" |
    grep -q '"result":"registered"' ||
    { cat "$T/audit.out"; fail "the audit lacks H's registration"; }
ok "H completed without a password and synced; hub audit lists it"

ss --home "$T/hub" hub kiosk remove shop-2 >/dev/null || fail "kiosk remove"
offer H2 rfcomm:6
expect_exit 3 kreg K2 "rfcomm:$ADDR_A:6"
grep -q "was removed" "$T/last.err" || fail "K2: $(cat "$T/last.err")"
offer_end H2
ok "a removed kiosk is refused over RFCOMM too (exit 3)"
