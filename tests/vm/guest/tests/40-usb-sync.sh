#!/bin/sh
# A handset H (a USB gadget on dummy_hcd, FunctionFS served by simsync)
# and the desktop D (libusb on the same kernel's host side), both of one
# subscriber registered at a hub on 127.0.0.1: they pair over USB (same
# code on both), then D syncs with H over USB while H serves with
# 'simsync listen usb-gadget': edits both ways, a file of many chunks, a
# concurrent edit, deletions; afterwards both meet the hub without
# duplicates or resurrections. Bad USB addresses and a missing handset
# fail with their exit codes and a reason.
. /lib/vm/simsync.sh
. /lib/vm/usb.sh
trap 'stop_bg; kill $LISTEN_PID 2>/dev/null' EXIT
LISTEN_PID=
usb_check
start_hub
new_sim sim 440101234567890
terminal H sim
terminal D sim

# Refusals before anything is plugged in.
expect_exit 2 ss --home "$T/D" pair --peer usb:zz --yes
grep -q 'usb:VID:PID' "$T/last.err" || fail "no form in: $(cat "$T/last.err")"
expect_exit 2 ss --home "$T/H" listen usb-gadget:../x
export SIMSYNC_USB_WAIT_MS=500
expect_exit 4 ss --home "$T/D" pair --peer usb --yes
unset SIMSYNC_USB_WAIT_MS
grep -q 'no USB device with the simsync interface' "$T/last.err" ||
    fail "no reason in: $(cat "$T/last.err")"
ok "bad USB addresses exit 2, no handset exits 4, each with a reason"

# Pairing: the handset listens on its gadget, the desktop finds it.
pair_listen H usb-gadget
ss --home "$T/D" pair --peer usb --yes >"$T/pair-D.out" 2>&1 ||
    { cat "$T"/pair-*.out; fail "D did not pair over USB"; }
pair_end 0
ch=$(sed -n 's/^Pairing code: //p' "$T/pair-H.out")
cd=$(sed -n 's/^Pairing code: //p' "$T/pair-D.out")
[ -n "$ch" ] && [ "$ch" = "$cd" ] || fail "codes differ: H '$ch', D '$cd'"
ss --home "$T/D" --json peers | grep -q '"addr":"usb"' ||
    fail "D's peer record: $(ss --home "$T/D" --json peers)"
[ ! -e "$GADGET" ] || fail "pair --listen left its gadget behind"
ok "H and D paired over USB with the same code; the gadget is gone after"

usb_listen H
put D contacts alice.vcf "BEGIN:VCARD
FN:Alice
END:VCARD"
mkdir -p "$T/D/data/archive"
head -c 300000 /dev/urandom >"$T/D/data/archive/photo.jpg"
sync_ok D --peer usb
cmp "$T/H/data/contacts/alice.vcf" "$T/D/data/contacts/alice.vcf" || fail "alice differs"
cmp "$T/H/data/archive/photo.jpg" "$T/D/data/archive/photo.jpg" || fail "photo differs"
ok "D's edits (one of 300 kB) reached the handset over USB"

put H pim dentist.ics "SUMMARY:Dentist"
put H contacts alice.vcf "BEGIN:VCARD
FN:Alice (H)
END:VCARD"
sync_ok D --with imei-H
same_tree H D contacts
same_tree H D pim
ok "H's edits reached D (sync --with, at the USB address paired)"

put D contacts carol.vcf "FN:Carol"
sync_ok D --peer usb
put H contacts carol.vcf "FN:Carol (on H)"
put D contacts carol.vcf "FN:Carol (on D)"
sync_ok D --peer usb:1d6b:0104
same_tree H D contacts
[ "$(copies H contacts)" = 1 ] && [ "$(copies D contacts)" = 1 ] ||
    fail "conflict copies: H $(copies H contacts), D $(copies D contacts)"
ok "a concurrent edit: one winner and one conflict copy on both (usb:VID:PID)"

rm "$T/D/data/contacts/alice.vcf"
rm "$T/H/data/pim/dentist.ics"
sync_ok D --peer usb
[ ! -e "$T/H/data/contacts/alice.vcf" ] || fail "D's deletion did not reach H"
[ ! -e "$T/D/data/pim/dentist.ics" ] || fail "H's deletion did not reach D"
ok "deletions travel both ways over USB"

usb_unlisten
sync_ok H
sync_ok D
grep -q '"sent_items":0,.*"recv_items":0,.*"conflicts":0' "$T/sync.out" ||
    fail "D and the hub exchanged what H had carried: $(cat "$T/sync.out")"
sync_ok H
for cls in contacts pim archive; do same_tree H D $cls; done
[ ! -e "$T/H/data/contacts/alice.vcf" ] && [ ! -e "$T/D/data/pim/dentist.ics" ] ||
    fail "a deleted item came back"
ok "after the hub: identical trees, no duplicates, no resurrection"
