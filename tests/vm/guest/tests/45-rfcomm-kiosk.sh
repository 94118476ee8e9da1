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
trap 'stop_bg; bt_stop' EXIT

bt_start
bt_up
start_hub
SUB=440101234567890
new_sim sim $SUB
terminal T1 sim
put T1 contacts alice.vcf "BEGIN:VCARD
FN:Alice
END:VCARD"
sync_ok T1

for k in 1 2; do
    ss --home "$T/hub" hub kiosk add shop-$k >"$T/add$k.out" || fail "kiosk add shop-$k"
    grep "^simsync-kiosk1:shop-$k:" "$T/add$k.out" >"$T/shop-$k.cred" ||
        { cat "$T/add$k.out"; fail "no credential for shop-$k"; }
    ss --home "$T/K$k" init --role kiosk --credential-file "$T/shop-$k.cred" \
        >/dev/null || fail "init kiosk K$k"
done

# offer NAME: a fresh handset NAME offers itself on RFCOMM channel 6 in
# the background (OFFER_PID) until a kiosk reads it.
offer() {
    ss --home "$T/$1" init --role terminal --terminal-id "imei-$1" \
        >/dev/null || fail "init $1"
    ss --home "$T/$1" kiosk offer --listen rfcomm:6 --timeout 60 \
        >"$T/offer-$1.out" 2>&1 &
    OFFER_PID=$!
    wait_match 20 "$T/offer-$1.out" '/^Offering this terminal to a kiosk on rfcomm/p' \
        >/dev/null || { cat "$T/offer-$1.out"; fail "$1 did not offer on RFCOMM"; }
}
# kreg KIOSK: KIOSK registers the handset offering on A's adapter.
kreg() {
    SIMSYNC_PIN=1234 ss --home "$T/$1" kiosk register --hub "$HUB_ADDR" \
        --hub-id "$HUB_ID" --sim "$T/sim.sim" --subscriber $SUB \
        --terminal "rfcomm:$ADDR_A:6"
}
offer_end() {
    wait "$OFFER_PID" || { cat "$T/offer-$1.out"; fail "$1's offer failed"; }
    grep -q "Gave terminal ID imei-$1" "$T/offer-$1.out" ||
        fail "$1's offer: $(cat "$T/offer-$1.out")"
}

offer H
kreg K1 >"$T/kreg.out" 2>&1 || { cat "$T/kreg.out" "$T/offer-H.out"; fail "kiosk register over RFCOMM"; }
offer_end H
grep -q "Registered terminal imei-H" "$T/kreg.out" || fail "K1: $(cat "$T/kreg.out")"
grep -q "$SUB" "$T/kreg.out" && fail "the kiosk printed the subscriber ID"
ok "K1 read H's terminal ID and node key over RFCOMM and registered it"

SIMSYNC_PIN=1234 ss --home "$T/H" sim insert "$T/sim.sim" >/dev/null ||
    fail "sim insert into H"
SIMSYNC_PIN=1234 SIMSYNC_RECOVERY=rec-secret ss --home "$T/H" register \
    --kiosk --hub "$HUB_ADDR" --hub-id "$HUB_ID" >"$T/complete.out" 2>&1 ||
    { cat "$T/complete.out"; fail "H did not complete"; }
[ ! -e "$T/H/password" ] || fail "a kiosk handset got a terminal password"
sync_ok H
cmp "$T/T1/data/contacts/alice.vcf" "$T/H/data/contacts/alice.vcf" ||
    fail "H did not get the subscriber's data"
ss --home "$T/hub" --json hub audit | tr '{' '\n' >"$T/audit.out" || fail "hub audit"
grep '"kiosk":"shop-1","terminal_id":"imei-H",' "$T/audit.out" |
    grep -q '"result":"registered"' ||
    { cat "$T/audit.out"; fail "the audit lacks H's registration"; }
ok "H completed without a password and synced; hub audit lists it"

ss --home "$T/hub" hub kiosk remove shop-2 >/dev/null || fail "kiosk remove"
offer H2
expect_exit 3 kreg K2
grep -q "was removed" "$T/last.err" || fail "K2: $(cat "$T/last.err")"
offer_end H2
ok "a removed kiosk is refused over RFCOMM too (exit 3)"
