#!/bin/sh
# Two terminals A and B of one subscriber (registered at a hub on the
# guest's 127.0.0.1) pair over RFCOMM between two emulated controllers,
# then sync directly over RFCOMM while A serves with 'simsync listen' on
# TCP and RFCOMM at once: edits on each side, a concurrent edit (one
# winner, one conflict copy on both), deletions both ways, a file larger
# than one RFCOMM write. Afterwards both meet the hub: identical trees, no
# duplicates, nothing deleted comes back.
. /lib/vm/simsync.sh
. /lib/vm/bt.sh
trap 'stop_bg; bt_stop' EXIT

bt_start
bt_up
start_hub
new_sim sim 440101234567890
terminal A sim
terminal B sim

# Pairing over RFCOMM on a fixed channel.
pair_listen A rfcomm:3
ss --home "$T/B" pair --peer "rfcomm:$ADDR_A:3" --yes >"$T/pair-B.out" 2>&1 ||
    { cat "$T"/pair-*.out; fail "B did not pair over RFCOMM"; }
pair_end 0
ca=$(sed -n 's/^Pairing code: //p' "$T/pair-A.out")
cb=$(sed -n 's/^Pairing code: //p' "$T/pair-B.out")
[ -n "$ca" ] && [ "$ca" = "$cb" ] || fail "codes differ: A '$ca', B '$cb'"
ss --home "$T/B" --json peers | grep -q "\"addr\":\"rfcomm:$ADDR_A:3\"" ||
    fail "B's peer record: $(ss --home "$T/B" --json peers)"
ok "A and B paired over RFCOMM with the same code"

# A serves on TCP and RFCOMM at once.
bg simsync --home "$T/A" listen 127.0.0.1:0 rfcomm:4 >"$T/listen.out" 2>"$T/listen.err"
wait_match 20 "$T/listen.out" '/^Serving paired nodes on rfcomm:/p' >/dev/null ||
    { cat "$T/listen.out" "$T/listen.err"; fail "A did not listen on RFCOMM"; }
TCP=$(wait_match 5 "$T/listen.out" 's/^Serving paired nodes on \([0-9.]*:[0-9]*\)\.$/\1/p') ||
    { cat "$T/listen.out"; fail "A did not listen on TCP"; }
PEER="rfcomm:$ADDR_A:4"

put B contacts alice.vcf "BEGIN:VCARD
FN:Alice
END:VCARD"
mkdir -p "$T/B/data/archive"
head -c 200000 /dev/urandom >"$T/B/data/archive/photo.jpg"
sync_ok B --peer "$PEER"
cmp "$T/A/data/contacts/alice.vcf" "$T/B/data/contacts/alice.vcf" || fail "alice differs"
cmp "$T/A/data/archive/photo.jpg" "$T/B/data/archive/photo.jpg" || fail "photo differs"
ok "B's edits (one of 200 kB) reached A over RFCOMM"

put A pim dentist.ics "SUMMARY:Dentist"
put A contacts alice.vcf "BEGIN:VCARD
FN:Alice (A)
END:VCARD"
sync_ok B --with imei-A
same_tree A B contacts
same_tree A B pim
ok "A's edits reached B (sync --with, at the RFCOMM address paired)"

put B contacts carol.vcf "FN:Carol"
sync_ok B --peer "$PEER"
put A contacts carol.vcf "FN:Carol (on A)"
put B contacts carol.vcf "FN:Carol (on B)"
sync_ok B --peer "$PEER"
same_tree A B contacts
[ "$(copies A contacts)" = 1 ] && [ "$(copies B contacts)" = 1 ] ||
    fail "conflict copies: A $(copies A contacts), B $(copies B contacts)"
cat "$T"/B/data/contacts/carol* | grep -q "on A" || fail "A's carol lost"
cat "$T"/B/data/contacts/carol* | grep -q "on B" || fail "B's carol lost"
ok "a concurrent edit: one winner and one conflict copy, the same on both"

put A contacts bob.vcf "FN:Bob"
sync_ok B --peer "$PEER"
[ -f "$T/B/data/contacts/bob.vcf" ] || fail "bob did not reach B"
rm "$T/B/data/contacts/bob.vcf"
rm "$T/A/data/pim/dentist.ics"
sync_ok B --peer "$PEER"
[ ! -e "$T/A/data/contacts/bob.vcf" ] || fail "B's deletion did not reach A"
[ ! -e "$T/B/data/pim/dentist.ics" ] || fail "A's deletion did not reach B"
ok "deletions travel both ways over RFCOMM"

# The same server on its TCP address, then both meet the hub.
put B browser b.url "https://example.org/b"
sync_ok B --peer "$TCP"
cmp "$T/A/data/browser/b.url" "$T/B/data/browser/b.url" || fail "b.url differs"
ok "the same listener serves TCP too ($TCP)"

sync_ok A
sync_ok B
grep -q '"sent_items":0,.*"recv_items":0,.*"conflicts":0' "$T/sync.out" ||
    fail "B and the hub exchanged what A had carried: $(cat "$T/sync.out")"
sync_ok A
for cls in contacts pim archive browser; do same_tree A B $cls; done
n=$(ls "$T/A/data/contacts" | grep -vc '\.conflict-')
[ "$n" = 2 ] && [ "$(copies A contacts)" = 1 ] ||
    fail "A's contacts after the hub: $(ls "$T/A/data/contacts")"
[ ! -e "$T/A/data/contacts/bob.vcf" ] && [ ! -e "$T/B/data/contacts/bob.vcf" ] ||
    fail "bob came back"
[ ! -e "$T/A/data/pim/dentist.ics" ] && [ ! -e "$T/B/data/pim/dentist.ics" ] ||
    fail "dentist came back"
ok "after the hub: identical trees, no duplicates, no resurrection"
