# kiosk.sh -- helpers for the kiosk tests over a local link (44, 45):
# kiosks with hub-issued credentials, a new handset offering itself on a
# link, and the kiosk's registration. Needs simsync.sh (start_hub run).
SUB=${SUB:-440101234567890}

# kiosks N: the hub issues credentials shop-1..shop-N, one kiosk node
# K1..KN holds each.
kiosks() {
    k=1
    while [ $k -le "$1" ]; do
        ss --home "$T/hub" hub kiosk add shop-$k >"$T/add$k.out" || fail "kiosk add shop-$k"
        grep "^simsync-kiosk1:shop-$k:" "$T/add$k.out" >"$T/shop-$k.cred" ||
            { cat "$T/add$k.out"; fail "no credential for shop-$k"; }
        ss --home "$T/K$k" init --role kiosk --credential-file "$T/shop-$k.cred" \
            >/dev/null || fail "init kiosk K$k"
        k=$((k + 1))
    done
}

# offer NAME ADDR: a fresh handset NAME offers itself on ADDR in the
# background (OFFER_PID) until a kiosk reads it.
offer() {
    ss --home "$T/$1" init --role terminal --terminal-id "imei-$1" \
        >/dev/null || fail "init $1"
    ss --home "$T/$1" kiosk offer --listen "$2" --timeout 60 \
        >"$T/offer-$1.out" 2>&1 &
    OFFER_PID=$!
    wait_match 20 "$T/offer-$1.out" "/^Offering this terminal to a kiosk on ${2%%:*}/p" \
        >/dev/null || { cat "$T/offer-$1.out"; fail "$1 did not offer on $2"; }
}

# offer_end NAME: NAME's offer ended well, having given its ID.
offer_end() {
    wait "$OFFER_PID" || { cat "$T/offer-$1.out"; fail "$1's offer failed"; }
    grep -q "Gave terminal ID imei-$1" "$T/offer-$1.out" ||
        fail "$1's offer: $(cat "$T/offer-$1.out")"
}

# kreg KIOSK PEER: KIOSK registers the handset at PEER for $SUB.
kreg() {
    SIMSYNC_PIN=1234 ss --home "$T/$1" kiosk register --hub "$HUB_ADDR" \
        --hub-id "$HUB_ID" --sim "$T/sim.sim" --subscriber $SUB --terminal "$2"
}

# complete NAME: the handset NAME, registered by a kiosk, completes with
# the recovery secret (no terminal password) and syncs.
complete() {
    SIMSYNC_PIN=1234 ss --home "$T/$1" sim insert "$T/sim.sim" >/dev/null ||
        fail "sim insert into $1"
    SIMSYNC_PIN=1234 SIMSYNC_RECOVERY=rec-secret ss --home "$T/$1" register \
        --kiosk --hub "$HUB_ADDR" --hub-id "$HUB_ID" >"$T/complete.out" 2>&1 ||
        { cat "$T/complete.out"; fail "$1 did not complete"; }
    [ ! -e "$T/$1/password" ] || fail "a kiosk handset got a terminal password"
    sync_ok "$1"
}

# audit: the hub's audit as JSON, one entry a line, in $T/audit.out.
audit() {
    ss --home "$T/hub" --json hub audit | tr '{' '\n' >"$T/audit.out" ||
        fail "hub audit"
}
