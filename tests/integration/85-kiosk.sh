#!/usr/bin/env bash
# The shop registration kiosk (issue 5 item 6, seed 003 FIG 18/19). The hub
# issues a credential (`hub kiosk add`); a kiosk made with it registers
# fresh handsets for a SIM's subscriber without a terminal password: one
# read from the handset over a link (`kiosk offer` / `--terminal`), one
# typed in (terminal ID and node key). Each handset then completes its keys
# at its first contact (`register --kiosk`: recovery secret for a known
# subscriber, a new data key for a new one) and syncs; the subscriber's
# other terminal gets a notice. Refused: a wrong PIN (exit 3, counted by
# the SIM), a SIM of another subscriber than the one typed, a replayed
# request, a forged credential, an unknown kiosk, a removed kiosk, a
# completion without a kiosk binding. `hub audit` lists all of it without
# subscriber IDs; the kiosk's home holds no data and no key.
. "$(dirname "$0")/lib.sh"

BG=
stop_bg() {
    for p in $BG; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    BG=
}
trap 'stop_bg; cleanup' EXIT

SUB_A=440101111111111
SUB_B=440102222222222
start_hub
new_sim a $SUB_A
new_sim b $SUB_B

# kreg HOME ARGS...: a kiosk registration with PIN 1234 at the test hub.
kreg() {
    local home=$1; shift
    SIMSYNC_PIN=${PIN:-1234} ss --home "$T/$home" kiosk register \
        --hub "$HUB_ADDR" --hub-id "$HUB_ID" "$@"
}
# complete NAME: the handset completes its kiosk registration.
complete() {
    SIMSYNC_PIN=1234 ss --home "$T/$1" register --kiosk --hub "$HUB_ADDR" \
        --hub-id "$HUB_ID" "${@:2}"
}
audit_json() { ss --home "$T/hub" --json hub audit; }

# ------------------------------------------------------------ credentials
ss --home "$T/hub" hub kiosk add shop-1 >"$T/add.out" || fail "kiosk add"
grep '^simsync-kiosk1:shop-1:' "$T/add.out" >"$T/shop-1.cred" \
    || { cat "$T/add.out" >&2; fail "no credential printed"; }
expect_exit 1 ss --home "$T/hub" hub kiosk add shop-1
grep -q "exists already" "$T/last.err" || fail "second add: no clear error"
expect_exit 2 ss --home "$T/hub" hub kiosk add 'bad name!'
ss --home "$T/hub" --json hub kiosk add shop-2 >"$T/add2.json" || fail "add shop-2"
jq -r .credential "$T/add2.json" >"$T/shop-2.cred"
grep -q '^simsync-kiosk1:shop-2:' "$T/shop-2.cred" || fail "JSON credential"
ok "the hub issues kiosk credentials (once per active name)"

ss --home "$T/kiosk" init --role kiosk --credential-file "$T/shop-1.cred" \
    >/dev/null || fail "init kiosk"
[ "$(stat -c %a "$T/kiosk/kiosk.credential")" = 600 ] \
    || fail "credential not stored 0600"
ss --home "$T/kiosk2" init --role kiosk >/dev/null || fail "init kiosk2"
echo "not a credential" >"$T/junk.cred"
expect_exit 2 ss --home "$T/kiosk2" kiosk enroll --credential-file "$T/junk.cred"
ss --home "$T/kiosk2" kiosk enroll --credential-file "$T/shop-2.cred" \
    >/dev/null || fail "enroll kiosk2"
ok "a kiosk keeps its credential 0600; junk is refused (exit 2)"

# An existing subscriber with one terminal and some data.
new_terminal t1
insert t1 a
register t1
put t1 contacts alice.vcf "BEGIN:VCARD
FN:Alice
END:VCARD"
sync_ok t1

# ------------------------------------------------- handset over the link
new_terminal h1
ss --home "$T/h1" kiosk offer --listen tcp:127.0.0.1:0 --timeout 60 \
    >"$T/offer.out" 2>&1 &
OFFER_PID=$!
BG="$BG $OFFER_PID"
OFFER_ADDR=$(wait_match 10 "$T/offer.out" \
    's/^Offering this terminal to a kiosk on \([0-9.]*:[0-9]*\) .*/\1/p') \
    || { cat "$T/offer.out" >&2; fail "offer did not listen"; }

# A wrong PIN: refused by the SIM (exit 3), one try gone, nothing sent.
PIN=9999 expect_exit 3 kreg kiosk --subscriber $SUB_A --sim "$T/a.sim" \
    --terminal "tcp:$OFFER_ADDR"
grep -q "refused the PIN (2 tries left)" "$T/last.err" \
    || { cat "$T/last.err" >&2; fail "wrong PIN: no clear error"; }
ss --home "$T/t1" --json sim status | grep -q '"pin_tries_left":2' \
    || fail "the wrong PIN did not count against the SIM"
# The SIM of another subscriber than the one typed.
expect_exit 3 kreg kiosk --subscriber $SUB_B --sim "$T/a.sim" \
    --terminal "tcp:$OFFER_ADDR"
grep -q "another subscriber" "$T/last.err" || fail "SIM mismatch not explained"
ok "wrong PIN refused by the SIM (exit 3, counted); SIM/subscriber mismatch refused"

kreg kiosk --subscriber $SUB_A --sim "$T/a.sim" --terminal "tcp:$OFFER_ADDR" \
    >"$T/kreg1.out" || { cat "$T/kreg1.out" >&2; fail "kiosk register h1"; }
wait "$OFFER_PID" || { cat "$T/offer.out" >&2; fail "offer failed"; }
BG=
grep -q "Registered terminal imei-h1" "$T/kreg1.out" || fail "no confirmation"
grep -q "other terminal will be told" "$T/kreg1.out" || fail "t1 not notified"
grep -q "$SUB_A" "$T/kreg1.out" && fail "the kiosk printed the subscriber ID"
ok "kiosk registers a handset read over the link (kiosk offer)"

# Before completion the handset holds no key and cannot sync.
insert h1 a
expect_exit 3 ss --home "$T/h1" sync
# Completion: a known subscriber needs the recovery secret.
expect_exit 3 complete h1
grep -q "recovery secret" "$T/last.err" || fail "no recovery hint"
SIMSYNC_RECOVERY=rec-secret complete h1 >/dev/null || fail "h1 completes"
[ -e "$T/h1/password" ] && fail "a kiosk handset got a terminal password"
sync_ok h1
cmp -s "$T/t1/data/contacts/alice.vcf" "$T/h1/data/contacts/alice.vcf" \
    || fail "h1 did not get t1's data"
put h1 contacts bob.vcf "BEGIN:VCARD
FN:Bob
END:VCARD"
sync_ok h1
sync_ok t1
[ -f "$T/t1/data/contacts/bob.vcf" ] || fail "t1 did not get h1's edit"
ok "the handset completes with the recovery secret, no password, and syncs"

ss --home "$T/t1" notices >"$T/notices.out" || fail "notices t1"
grep -q "kiosk 'shop-1' registered a new terminal" "$T/notices.out" \
    && grep -q "imei-h1" "$T/notices.out" \
    || { cat "$T/notices.out" >&2; fail "t1 got no notice"; }
ok "the subscriber's other terminal sees the notice"

# ------------------------------------------------------------ typed in
new_terminal h2
KEY2=$(ss --home "$T/h2" --json id | jq -r .node_key)
[ ${#KEY2} = 64 ] || fail "no node key in 'id --json'"
expect_exit 2 kreg kiosk --sim "$T/b.sim" --terminal-id imei-h2 --node-key zz
expect_exit 2 kreg kiosk --sim "$T/b.sim" --terminal-id imei-h2 \
    --node-key "$(printf '%064d' 0)"
grep -q "not a valid node key" "$T/last.err" || fail "zero key not explained"
kreg kiosk --sim "$T/b.sim" --subscriber $SUB_B --terminal-id imei-h2 \
    --node-key "$KEY2" --json >"$T/kreg2.json" || fail "kiosk register h2"
[ "$(jq -r .subscriber_is_new "$T/kreg2.json")" = true ] || fail "B not new"
insert h2 b
complete h2 --json >"$T/h2reg.json" || fail "h2 completes"
[ "$(jq -r .recovery "$T/h2reg.json")" != null ] \
    || fail "a new subscriber's handset printed no recovery secret"
put h2 contacts carol.vcf "BEGIN:VCARD
FN:Carol
END:VCARD"
sync_ok h2
ok "typed terminal ID and node key; the new subscriber's handset makes the key and syncs"

# A terminal no kiosk registered cannot complete without a password.
new_terminal h3
insert h3 b
expect_exit 3 complete h3
grep -q "no kiosk registration" "$T/last.err" || fail "h3: no clear error"
ok "completion without a kiosk binding refused (exit 3)"

# ------------------------------------------------------------ replay
new_terminal h4
KEY4=$(ss --home "$T/h4" --json id | jq -r .node_key)
kreg kiosk --sim "$T/b.sim" --terminal-id imei-h4 --node-key "$KEY4" \
    --save "$T/req4" >/dev/null || fail "save request"
[ "$(stat -c %a "$T/req4")" = 600 ] || fail "saved request not 0600"
ss --home "$T/kiosk" kiosk send "$T/req4" --hub "$HUB_ADDR" --hub-id "$HUB_ID" \
    >/dev/null || fail "send saved request"
expect_exit 3 ss --home "$T/kiosk" kiosk send "$T/req4" --hub "$HUB_ADDR" \
    --hub-id "$HUB_ID"
grep -q "replayed" "$T/last.err" || { cat "$T/last.err" >&2; fail "replay not explained"; }
# Two copies sent at the same time: exactly one passes.
new_terminal h6
KEY6=$(ss --home "$T/h6" --json id | jq -r .node_key)
kreg kiosk --sim "$T/b.sim" --terminal-id imei-h6 --node-key "$KEY6" \
    --save "$T/req6" >/dev/null || fail "save request 6"
RACE=
for i in 1 2; do
    ( rc=0; ss --home "$T/kiosk" kiosk send "$T/req6" --hub "$HUB_ADDR" \
        --hub-id "$HUB_ID" >/dev/null 2>&1 || rc=$?; echo $rc >"$T/race$i" ) &
    RACE="$RACE $!"
done
for p in $RACE; do wait "$p"; done
[ "$(sort "$T/race1" "$T/race2" | tr '\n' ' ')" = "0 3 " ] \
    || fail "racing copies: exits $(cat "$T/race1") and $(cat "$T/race2")"
ok "a replayed registration is refused (exit 3), also when racing"

# ------------------------------------------------ forged / unknown kiosk
new_terminal h5
KEY5=$(ss --home "$T/h5" --json id | jq -r .node_key)
# The same name with another key: the hub has only shop-1's real key.
sed 's/.$/0/; t; s/$//' "$T/shop-1.cred" >"$T/forged.cred"
if cmp -s "$T/forged.cred" "$T/shop-1.cred"; then
    sed 's/.$/1/' "$T/shop-1.cred" >"$T/forged.cred"
fi
ss --home "$T/forger" init --role kiosk --credential-file "$T/forged.cred" \
    >/dev/null || fail "init forger"
expect_exit 3 kreg forger --sim "$T/b.sim" --terminal-id imei-h5 --node-key "$KEY5"
grep -q "signature does not verify" "$T/last.err" \
    || { cat "$T/last.err" >&2; fail "forgery not explained"; }
sed 's/:shop-1:/:ghost:/' "$T/shop-1.cred" >"$T/ghost.cred"
ss --home "$T/ghost" init --role kiosk --credential-file "$T/ghost.cred" \
    >/dev/null || fail "init ghost"
expect_exit 3 kreg ghost --sim "$T/b.sim" --terminal-id imei-h5 --node-key "$KEY5"
grep -q "unknown kiosk 'ghost'" "$T/last.err" || fail "unknown kiosk not explained"
ok "forged credential and unknown kiosk refused (exit 3)"

# ------------------------------------------- again, and a mistyped key
KEY1=$(ss --home "$T/h1" --json id | jq -r .node_key)
expect_exit 3 kreg kiosk --sim "$T/a.sim" --terminal-id imei-h1 --node-key "$KEY1"
grep -q "registered for the subscriber already" "$T/last.err" \
    || fail "re-registering a complete terminal not explained"
# The shop types h4's key for h5: h5 cannot complete until it is fixed.
kreg kiosk --sim "$T/b.sim" --terminal-id imei-h5 --node-key "$KEY4" \
    >/dev/null || fail "kiosk register h5 (wrong key)"
insert h5 b
REC_B=$(jq -r .recovery "$T/h2reg.json")
SIMSYNC_RECOVERY=$REC_B expect_exit 3 complete h5
kreg kiosk --sim "$T/b.sim" --terminal-id imei-h5 --node-key "$KEY5" --json \
    >"$T/kreg5.json" || fail "kiosk register h5 (right key)"
[ "$(jq -r .notified "$T/kreg5.json")" -ge 1 ] || fail "h2 not notified"
SIMSYNC_RECOVERY=$REC_B complete h5 >/dev/null || fail "h5 completes"
sync_ok h5
cmp -s "$T/h2/data/contacts/carol.vcf" "$T/h5/data/contacts/carol.vcf" \
    || fail "h5 did not get h2's data"
ok "a complete terminal is not registered twice; a pending binding can be corrected"

# ------------------------------------------------------------ removal
ss --home "$T/hub" hub kiosk remove shop-2 >/dev/null || fail "remove shop-2"
expect_exit 1 ss --home "$T/hub" hub kiosk remove shop-2
expect_exit 3 kreg kiosk2 --sim "$T/b.sim" --terminal-id imei-h5 --node-key "$KEY5"
grep -q "was removed" "$T/last.err" || fail "removed kiosk not explained"
ss --home "$T/hub" --json hub kiosk list >"$T/list.json" || fail "kiosk list"
[ "$(jq -r '.kiosks[] | select(.name=="shop-2") | .active' "$T/list.json")" = false ] \
    || fail "shop-2 still active"
[ "$(jq -r '.kiosks[] | select(.name=="shop-1") | .registrations' "$T/list.json")" = 6 ] \
    || { cat "$T/list.json" >&2; fail "shop-1 should count 6 registrations"; }
ok "a removed kiosk can no longer register"

# ------------------------------------------------------------ audit
audit_json >"$T/audit.json" || fail "hub audit"
n_ok=$(jq '[.audit[] | select(.result=="registered")] | length' "$T/audit.json")
n_no=$(jq '[.audit[] | select(.result=="refused")] | length' "$T/audit.json")
[ "$n_ok" = 6 ] && [ "$n_no" = 6 ] \
    || { cat "$T/audit.json" >&2; fail "audit: $n_ok registered, $n_no refused"; }
for why in replayed "does not verify" "unknown kiosk" "was removed" \
    "already"; do
    jq -r '.audit[].detail' "$T/audit.json" | grep -q "$why" \
        || fail "audit lacks '$why'"
done
jq -e '.audit[0] | .kiosk=="shop-1" and .terminal_id=="imei-h1" and .time_ms>0' \
    "$T/audit.json" >/dev/null || fail "audit line fields"
ss --home "$T/hub" hub audit >"$T/audit.txt" || fail "hub audit (text)"
[ "$(wc -l <"$T/audit.txt")" = 12 ] || fail "text audit lines"
for s in $SUB_A $SUB_B; do
    grep -q "$s" "$T/audit.json" "$T/audit.txt" && fail "audit shows a subscriber ID"
    grep -rqa "$s" "$T/hub" && fail "hub files hold subscriber $s in clear"
done
ok "hub audit lists every registration and refusal, no subscriber IDs"

# ------------------------------------------------------ the kiosk's home
for f in datakey.box password binding sim data; do
    [ -e "$T/kiosk/$f" ] && fail "the kiosk's home holds $f"
done
for c in contacts mail browser archive apps pim settings rights; do
    [ -e "$T/kiosk/data/$c" ] && fail "the kiosk has a $c folder"
done
ss --home "$T/kiosk" --json kiosk audit >"$T/kaudit.json" || fail "kiosk audit"
jq -e '[.attempts[] | select(.result=="registered" and .terminal_id=="imei-h1")] | length == 1' \
    "$T/kaudit.json" >/dev/null || { cat "$T/kaudit.json" >&2; fail "kiosk audit: h1"; }
jq -r '.attempts[] | select(.result=="refused") | .detail' "$T/kaudit.json" \
    | grep -q "refused the PIN" || fail "kiosk audit: no PIN refusal"
jq -r '.attempts[] | select(.result=="refused") | .detail' "$T/kaudit.json" \
    | grep -q "replayed" || fail "kiosk audit: no replay refusal"
[ "$(jq -r '.attempts[] | select(.result=="registered" and .terminal_id=="imei-h1") | .subscriber' "$T/kaudit.json")" = "****1111" ] \
    || fail "kiosk audit: subscriber not masked"
grep -q "$SUB_A" "$T/kiosk/kiosk.audit" && fail "kiosk audit holds a subscriber ID"
SIMSYNC_PIN=1234 expect_exit 1 ss --home "$T/kiosk" sim insert "$T/a.sim"
grep -q "no SIM slot" "$T/last.err" || fail "kiosk sim insert: no clear error"
ok "the kiosk holds no data, no key, no SIM; its own audit has every attempt"
