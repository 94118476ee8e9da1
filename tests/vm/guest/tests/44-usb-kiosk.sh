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
trap 'stop_bg' EXIT
usb_check
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
ok "the hub issued two kiosk credentials"

# offer NAME: a fresh handset NAME offers itself over its USB gadget in
# the background (OFFER_PID) until a kiosk reads it.
offer() {
    ss --home "$T/$1" init --role terminal --terminal-id "imei-$1" \
        >/dev/null || fail "init $1"
    ss --home "$T/$1" kiosk offer --listen usb-gadget --timeout 60 \
        >"$T/offer-$1.out" 2>&1 &
    OFFER_PID=$!
    wait_match 20 "$T/offer-$1.out" '/^Offering this terminal to a kiosk on usb-gadget/p' \
        >/dev/null || { cat "$T/offer-$1.out"; fail "$1 did not offer on usb-gadget"; }
}
# kreg KIOSK: KIOSK registers the handset on the USB cable for $SUB.
kreg() {
    SIMSYNC_PIN=1234 ss --home "$T/$1" kiosk register --hub "$HUB_ADDR" \
        --hub-id "$HUB_ID" --sim "$T/sim.sim" --subscriber $SUB --terminal usb
}
offer_end() {
    wait "$OFFER_PID" || { cat "$T/offer-$1.out"; fail "$1's offer failed"; }
    grep -q "Gave terminal ID imei-$1" "$T/offer-$1.out" ||
        fail "$1's offer: $(cat "$T/offer-$1.out")"
    [ ! -e "$GADGET" ] || fail "$1's offer left its gadget behind"
}

# ------------------------------------------------------- a registration
offer H
kreg K1 >"$T/kreg.out" 2>&1 || { cat "$T/kreg.out" "$T/offer-H.out"; fail "kiosk register over USB"; }
offer_end H
grep -q "Registered terminal imei-H" "$T/kreg.out" || fail "K1: $(cat "$T/kreg.out")"
grep -q "$SUB" "$T/kreg.out" && fail "the kiosk printed the subscriber ID"
key=$(ss --home "$T/H" --json id | sed -n 's/.*"node_key":"\([0-9a-f]*\)".*/\1/p')
[ -n "$key" ] || fail "no node key from H"
ok "K1 read H's terminal ID and node key over USB and registered it"

SIMSYNC_PIN=1234 ss --home "$T/H" sim insert "$T/sim.sim" >/dev/null ||
    fail "sim insert into H"
SIMSYNC_PIN=1234 SIMSYNC_RECOVERY=rec-secret ss --home "$T/H" register \
    --kiosk --hub "$HUB_ADDR" --hub-id "$HUB_ID" >"$T/complete.out" 2>&1 ||
    { cat "$T/complete.out"; fail "H did not complete"; }
[ ! -e "$T/H/password" ] || fail "a kiosk handset got a terminal password"
sync_ok H
cmp "$T/T1/data/contacts/alice.vcf" "$T/H/data/contacts/alice.vcf" ||
    fail "H did not get the subscriber's data"
put H contacts bob.vcf "FN:Bob"
sync_ok H
sync_ok T1
[ -f "$T/T1/data/contacts/bob.vcf" ] || fail "T1 did not get H's edit"
ok "H completed with the recovery secret, no password, and syncs both ways"

# audit: the hub's audit as JSON, one entry a line.
audit() {
    ss --home "$T/hub" --json hub audit | tr '{' '\n' >"$T/audit.out" ||
        fail "hub audit"
}
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
offer H2
expect_exit 3 kreg K2
grep -q "was removed" "$T/last.err" || fail "K2: $(cat "$T/last.err")"
offer_end H2
SIMSYNC_PIN=1234 ss --home "$T/H2" sim insert "$T/sim.sim" >/dev/null ||
    fail "sim insert into H2"
SIMSYNC_RECOVERY=rec-secret SIMSYNC_PIN=1234 expect_exit 3 ss --home "$T/H2" \
    register --kiosk --hub "$HUB_ADDR" --hub-id "$HUB_ID"
audit
grep '"kiosk":"shop-2","terminal_id":"imei-H2",' "$T/audit.out" |
    grep -q '"result":"refused".*removed' ||
    { cat "$T/audit.out"; fail "the audit lacks the refusal"; }
ok "a removed kiosk is refused over USB too (exit 3, audited); H2 cannot complete"
