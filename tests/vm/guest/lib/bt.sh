# bt.sh -- Bluetooth helpers for guest tests (sourced, not a test).
#
# bt_start starts BlueZ's btvirt with two emulated BR/EDR controllers on
# /dev/vhci; they can page each other through the real kernel HCI, L2CAP
# and RFCOMM code. Sets BT_A/BT_B (hci0, hci1) and ADDR_A/ADDR_B.
# bt_up powers them without bluetoothd (legacy pairing off: sessions are
# secured by simsync's own channel, not by the link key); with bluetoothd,
# use bt_wait_powered instead.

bt_start() {
    btvirt -l2 >"$T/btvirt.log" 2>&1 &
    BTVIRT_PID=$!
    n=100
    while [ $n -gt 0 ]; do
        set -- $(ls /sys/class/bluetooth 2>/dev/null | grep -E '^hci[0-9]+$' | sort)
        [ $# -ge 2 ] && break
        sleep 0.05
        n=$((n - 1))
    done
    [ $# -ge 2 ] || { cat "$T/btvirt.log"; fail "btvirt made no controllers"; }
    BT_A=$1
    BT_B=$2
}

bt_addr() { hciconfig "$1" | sed -n 's/.*BD Address: \([0-9A-F:]*\).*/\1/p'; }

bt_up() {
    for h in $BT_A $BT_B; do
        hciconfig "$h" up && hciconfig "$h" sspmode 0 && hciconfig "$h" piscan ||
            fail "cannot power $h"
    done
    ADDR_A=$(bt_addr "$BT_A")
    ADDR_B=$(bt_addr "$BT_B")
    [ -n "$ADDR_A" ] && [ -n "$ADDR_B" ] || fail "controllers have no address"
}

bt_stop() {
    kill "$BTVIRT_PID" 2>/dev/null
    wait "$BTVIRT_PID" 2>/dev/null
    n=100
    while [ $n -gt 0 ] && ls /sys/class/bluetooth 2>/dev/null | grep -qE '^hci[0-9]+$'; do
        sleep 0.05
        n=$((n - 1))
    done
}
