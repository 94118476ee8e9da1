# usb.sh -- helpers for the USB guest tests (sourced, not a test). The
# handset side is a gadget on dummy_hcd's controller; the same kernel's
# host side enumerates it, and the desktop finds it with libusb. Needs
# dummy_hcd, libcomposite and usb_f_fs (modules.list).
UDC=dummy_udc.0
GADGET=/sys/kernel/config/usb_gadget/simsync

usb_check() {
    [ -d /sys/class/udc/$UDC ] || {
        echo "no $UDC: is dummy_hcd in modules.list?"
        exit 77
    }
}

# usb_listen NAME: NAME serves paired nodes on usb-gadget in the
# background (LISTEN_PID) and waits until the gadget is bound.
usb_listen() {
    simsync --home "$T/$1" listen usb-gadget >"$T/listen-$1.out" \
        2>"$T/listen-$1.err" &
    LISTEN_PID=$!
    wait_match 20 "$T/listen-$1.out" '/^Serving paired nodes on usb-gadget/p' \
        >/dev/null || { cat "$T/listen-$1.out" "$T/listen-$1.err";
                        fail "$1 did not listen on usb-gadget"; }
    grep -q "$UDC" "$GADGET/UDC" || fail "the gadget is not bound to $UDC"
}

# usb_unlisten: end the listener; it must remove its gadget.
usb_unlisten() {
    kill "$LISTEN_PID" 2>/dev/null
    wait "$LISTEN_PID" 2>/dev/null
    [ ! -e "$GADGET" ] || fail "the listener left $GADGET behind"
}
