#!/usr/bin/env bash
# The desktop companion (issue 4 item 6): a desktop D and terminal T of one
# subscriber, both registered at the hub, pair (the code shown on both
# sides matches; a wrong --code is refused) and then sync directly while D
# serves: T's edits reach D byte for byte, D's reach T, a concurrent edit
# ends as one winner and one conflict copy on both, deletions travel.
# Afterwards everyone syncs with the hub in any order: identical trees, no
# duplicates, no resurrected deletion. A terminal of another subscriber
# cannot pair or sync with D; an unpaired terminal of the same subscriber
# cannot sync with D until paired; the SIM rule holds on the terminal;
# D's daemon with --listen serves while it runs.
. "$(dirname "$0")/lib.sh"

BG=
stop_bg() {
    for p in $BG; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    BG=
}
trap 'stop_bg; cleanup' EXIT

# pair_start NAME: NAME waits for a pairing (--yes); sets PAIR_ADDR, PAIR_PID.
pair_start() {
    ss --home "$T/$1" pair --listen 127.0.0.1:0 --yes >"$T/pair-$1.out" 2>&1 &
    PAIR_PID=$!
    PAIR_ADDR=$(wait_match 10 "$T/pair-$1.out" \
        's/^Waiting for the other node on \([0-9.]*:[0-9]*\): .*/\1/p') \
        || { cat "$T/pair-$1.out" >&2; fail "$1 did not wait for a pairing"; }
}
# pair_end WANT: the listening side's exit code must be WANT.
pair_end() {
    local got=0
    wait "$PAIR_PID" || got=$?
    [ "$got" = "$1" ] || { cat "$T/pair-D.out" >&2; fail "pair --listen exited $got, not $1"; }
}
code_of() { sed -n 's/^Pairing code: //p' "$1" | head -n1; }
npeers() { ss --home "$T/$1" --json peers | grep -o '"terminal_id"' | wc -l; }
same_file() { cmp -s "$T/$1/data/$3" "$T/$2/data/$3" || fail "$3 differs between $1 and $2"; }
copies() { ls "$T/$1/data/contacts" | grep -c '\.conflict-' || true; }

start_hub
new_sim sim 440101234567890
new_sim other 440109876543210
ss --home "$T/D" init --role desktop --terminal-id desk-D >/dev/null || fail "init D"
for t in T T2 X; do new_terminal $t; done
for t in D T T2; do insert $t sim; register $t; done
insert X other; register X

# ---------------------------------------------------------------- pairing
pair_start D
expect_exit 3 ss --home "$T/T" pair --peer "$PAIR_ADDR" --code 000000
pair_end 3
shown=$(code_of "$T/last.out")
[ -n "$shown" ] || fail "T showed no code: $(cat "$T/last.out" "$T/last.err")"
[ "$shown" = 000000 ] || grep -q "is not the code shown here" "$T/last.err" \
    || fail "wrong code: $(cat "$T/last.err")"
grep -q "refused the pairing" "$T/pair-D.out" || fail "D: $(cat "$T/pair-D.out")"
[ "$(npeers D)" = 0 ] && [ "$(npeers T)" = 0 ] || fail "a refused pairing pinned something"
ok "a wrong --code is refused on both sides, nothing pinned"

expect_exit 2 ss --home "$T/T" pair "$PAIR_ADDR" --peer "$PAIR_ADDR"
grep -q "give the peer once" "$T/last.err" || fail "no reason: $(cat "$T/last.err")"
pair_start D
# 'pair PEER' is 'pair --peer PEER'.
ss --home "$T/T" pair "$PAIR_ADDR" --yes >"$T/pair-T.out" 2>&1 \
    || { cat "$T/pair-T.out" >&2; fail "T did not pair"; }
pair_end 0
[ -n "$(code_of "$T/pair-T.out")" ] && [ "$(code_of "$T/pair-T.out")" = "$(code_of "$T/pair-D.out")" ] \
    || fail "codes differ: T $(code_of "$T/pair-T.out"), D $(code_of "$T/pair-D.out")"
ss --home "$T/D" --json peers | grep -q '"terminal_id":"imei-T","role":"terminal"' \
    || fail "D's peers: $(ss --home "$T/D" peers)"
ss --home "$T/T" --json peers | grep -q '"terminal_id":"desk-D","role":"desktop"' \
    || fail "T's peers: $(ss --home "$T/T" peers)"
ok "D and T paired with the same code on both sides"

# A terminal of another subscriber cannot pair: both sides refuse.
pair_start D
expect_exit 3 ss --home "$T/X" pair --peer "$PAIR_ADDR" --yes
pair_end 3
grep -q "another subscriber" "$T/pair-D.out" || fail "D: $(cat "$T/pair-D.out")"
[ "$(npeers D)" = 1 ] && [ "$(npeers X)" = 0 ] || fail "X's attempt pinned something"
ok "a node of another subscriber cannot pair (exit 3, nothing pinned)"

# ---------------------------------------------------------------- serving
# D leaves mail out: what one side does not sync never travels.
ss --home "$T/D" classes contacts,browser,archive,apps,pim,settings,rights >/dev/null
"$SIMSYNC" --home "$T/D" serve --listen 127.0.0.1:0 >"$T/serve.out" 2>"$T/serve.err" &
BG="$BG $!"
SERVE=$(wait_match 10 "$T/serve.out" 's/^Serving paired nodes on \(.*\)\.$/\1/p') \
    || { cat "$T/serve.out" "$T/serve.err" >&2; fail "D did not serve"; }

put T contacts alice.vcf "BEGIN:VCARD
FN:Alice
END:VCARD"
mkdir -p "$T/T/data/archive"
head -c 300000 /dev/urandom >"$T/T/data/archive/photo.jpg"
put T mail m1.eml "Subject: not for D"
sync_ok T --peer "$SERVE"
same_file T D contacts/alice.vcf
same_file T D archive/photo.jpg
[ ! -e "$T/D/data/mail/m1.eml" ] || fail "mail reached D, which does not sync it"
ok "T's edits reached D with the exact bytes (inline and chunked)"

put D contacts alice.vcf "BEGIN:VCARD
FN:Alice (desk)
END:VCARD"
put D pim dentist.ics "SUMMARY:Dentist"
sync_ok T --with desk-D
same_file T D contacts/alice.vcf
same_file T D pim/dentist.ics
ok "D's edits reached T (sync --with, at the address learnt)"

put T contacts carol.vcf "FN:Carol"
sync_ok T --peer "$SERVE"
put T contacts carol.vcf "FN:Carol (on T)"
put D contacts carol.vcf "FN:Carol (on D)"
sync_ok T --peer "$SERVE"
same_tree T D contacts
[ "$(copies T)" = 1 ] || fail "expected one conflict copy on T, found $(copies T)"
cat "$T/T/data/contacts/carol"* | grep -q "on T" || fail "T's edit lost"
cat "$T/T/data/contacts/carol"* | grep -q "on D" || fail "D's edit lost"
ok "a concurrent edit left one winner and one identical conflict copy on both"

put D contacts bob.vcf "FN:Bob"
sync_ok T --peer "$SERVE"
[ -f "$T/T/data/contacts/bob.vcf" ] || fail "bob did not reach T"
rm "$T/T/data/contacts/bob.vcf"
sync_ok T --peer "$SERVE"
[ ! -e "$T/D/data/contacts/bob.vcf" ] || fail "T's deletion did not reach D"
rm "$T/D/data/pim/dentist.ics"
sync_ok T --peer "$SERVE"
[ ! -e "$T/T/data/pim/dentist.ics" ] || fail "D's deletion did not reach T"
ok "deletions travel both ways between T and D"

# ------------------------------------------------------- then the hub too
# Acknowledgements are per peer: what D acknowledged is not the hub's, so
# T's edits still count as pending for the hub (erase relies on this).
up_contacts() { ss --home "$T/$1" --json status | sed -n 's/.*"name":"contacts","items":[0-9]*,"pending_up":\([0-9]*\).*/\1/p'; }
[ "$(up_contacts T)" -gt 0 ] || fail "T's edits look acknowledged by the hub, which never saw them"
# T meets the hub (its mail, which D does not carry, goes up too), then
# D: D has nothing T has not brought already.
sync_ok T
[ "$(up_contacts T)" = 0 ] || fail "T still has $(up_contacts T) pending after its hub sync"
ss --home "$T/D" --json sync >"$T/d-hub.json" 2>&1 || fail "D hub sync: $(cat "$T/d-hub.json")"
grep -q '"sent_items":0,.*"recv_items":0,.*"conflicts":0' "$T/d-hub.json" \
    || fail "D and the hub exchanged what T had brought: $(cat "$T/d-hub.json")"
# T edits, D carries the edit to the hub, then T meets the hub: T sends
# nothing again, gets nothing back, and nothing conflicts.
put T contacts alice.vcf "BEGIN:VCARD
FN:Alice (T again)
END:VCARD"
sync_ok T --peer "$SERVE"
sync_ok D
ss --home "$T/T" --json sync >"$T/t-hub.json" 2>&1 || fail "T hub sync: $(cat "$T/t-hub.json")"
grep -q '"sent_items":0,.*"recv_items":0,.*"conflicts":0' "$T/t-hub.json" \
    || fail "T and the hub exchanged what D carried: $(cat "$T/t-hub.json")"
for t in T2 D T T2; do sync_ok $t; done
for cls in contacts pim archive; do same_tree T D $cls; same_tree T T2 $cls; done
ls "$T/T2/data/contacts" | sort >"$T/t2.ls"
[ "$(grep -vc '\.conflict-' "$T/t2.ls")" = 2 ] && [ "$(copies T2)" = 1 ] \
    || fail "T2's contacts: $(cat "$T/t2.ls")"
grep -q "T again" "$T/T2/data/contacts/alice.vcf" || fail "T2 lacks the last alice"
[ ! -e "$T/T2/data/contacts/bob.vcf" ] && [ ! -e "$T/T/data/contacts/bob.vcf" ] \
    || fail "bob came back"
[ ! -e "$T/T2/data/pim/dentist.ics" ] && [ ! -e "$T/D/data/pim/dentist.ics" ] \
    || fail "dentist came back"
ok "after everyone met the hub: identical trees, no duplicates, no resurrection"

# ---------------------------------------------------------------- refusals
expect_exit 3 ss --home "$T/X" sync --peer "$SERVE"
ok "a terminal of another subscriber cannot sync with D (exit 3)"
expect_exit 3 ss --home "$T/T2" sync --peer "$SERVE"
pair_start D
ss --home "$T/T2" pair --peer "$PAIR_ADDR" --yes >"$T/pair-T2.out" 2>&1 \
    || { cat "$T/pair-T2.out" >&2; fail "T2 did not pair"; }
pair_end 0
put T2 browser t2.url "https://example.org/t2"
sync_ok T2 --peer "$SERVE"
same_file T2 D browser/t2.url
ss --home "$T/D" unpair imei-T2 >/dev/null || fail "unpair"
expect_exit 3 ss --home "$T/T2" sync --peer "$SERVE"
wait_match 5 "$T/serve.err" '/refused node/p' >/dev/null \
    || fail "D did not log the refusal: $(cat "$T/serve.err")"
ok "an unpaired terminal syncs with D only once paired, and no longer once unpaired"

ss --home "$T/T" sim remove >/dev/null
expect_exit 3 ss --home "$T/T" sync --peer "$SERVE"
insert T other
expect_exit 3 ss --home "$T/T" sync --peer "$SERVE"
insert T sim
sync_ok T --peer "$SERVE"
ok "T syncs with D only while its bound SIM is in"
stop_bg

# ------------------------------------------------------- the desktop daemon
# D's daemon serves T while it keeps its own hub sync: an edit T brings to
# D goes on to the hub by D's after-update trigger, and T2 gets it there.
ss --home "$T/D" policy set sync.debounce_seconds 1s >/dev/null || fail "policy set"
mkdir -p "$T/nops"
"$SIMSYNC" --home "$T/D" daemon --listen 127.0.0.1:0 --power-supply-dir "$T/nops" \
    2>"$T/D.daemon" &
BG="$BG $!"
DAEMON=$(wait_match 10 "$T/D.daemon" 's/.*serving paired nodes on \([0-9.]*:[0-9]*\).*/\1/p') \
    || { cat "$T/D.daemon" >&2; fail "D's daemon did not listen"; }
put T contacts dave.vcf "FN:Dave"
sync_ok T --peer "$DAEMON"
same_file T D contacts/dave.vcf
ok "D's daemon with --listen serves T while it runs"
t2_has_dave() { sync_ok T2; [ -f "$T/T2/data/contacts/dave.vcf" ]; }
for _ in $(seq 1 60); do t2_has_dave && break; sleep 0.25; done
[ -f "$T/T2/data/contacts/dave.vcf" ] \
    || { cat "$T/D.daemon" >&2; fail "D's daemon did not carry dave to the hub"; }
stop_bg
for t in T D; do sync_ok $t; done
for cls in contacts pim archive browser; do same_tree T D $cls; same_tree T T2 $cls; done
ok "D's daemon carried T's edit on to the hub; all trees identical"
