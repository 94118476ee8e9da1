#!/bin/sh
# The USB link below simsync's protocol, with the usbpipe test program
# (tests/tools/usbpipe.c): an echo handset on the gadget and a desktop
# sender over libusb. Every byte comes back in order for writes of sizes
# around the packet and transfer boundaries (1, 64, 16384 bytes, odd
# sizes) and for writes larger than one transfer, where both ends write at
# once (each keeps a read posted); several sessions follow each other on
# one attachment; a listener killed with SIGKILL leaves a gadget that the
# next listener removes and makes again.
. /lib/vm/simsync.sh
. /lib/vm/usb.sh
usb_check
command -v usbpipe >/dev/null || { echo "usbpipe is not in this initramfs"; exit 77; }
trap 'kill $E 2>/dev/null' EXIT

usbpipe echo - 6 >"$T/echo.log" 2>&1 &
E=$!
wait_match 20 "$T/echo.log" '/listening on/p' >/dev/null ||
    { cat "$T/echo.log"; fail "the echo handset did not start"; }
for args in "1 1" "20000 64" "300000 16384" "1000000 5000" \
            "100003 1021" "500000 50000"; do
    usbpipe send - $args >"$T/send.out" 2>&1 ||
        { cat "$T/send.out"; fail "usbpipe send $args"; }
    cat "$T/send.out"
done
wait $E || fail "the echo handset failed"
[ "$(grep -c '^usbpipe: session' "$T/echo.log")" = 6 ] ||
    { cat "$T/echo.log"; fail "not 6 sessions"; }
[ ! -e "$GADGET" ] || fail "usbpipe left $GADGET behind"
ok "every byte echoed in order, 6 sessions on one attachment"

usbpipe echo - 1 >"$T/echo2.log" 2>&1 &
E=$!
wait_match 20 "$T/echo2.log" '/listening on/p' >/dev/null || fail "echo 2"
kill -9 $E
wait $E 2>/dev/null
[ -d "$GADGET" ] || fail "SIGKILL should leave the gadget behind"
usbpipe echo - 1 >"$T/echo3.log" 2>&1 &
E=$!
wait_match 20 "$T/echo3.log" '/listening on/p' >/dev/null ||
    { cat "$T/echo3.log"; fail "a new listener did not replace the dead one's gadget"; }
usbpipe send - 1000 >"$T/send.out" 2>&1 || { cat "$T/send.out"; fail "send after replacing"; }
wait $E
ok "a gadget left by a killed listener is replaced by the next one"
