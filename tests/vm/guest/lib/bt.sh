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

# btd_start: a private system D-Bus, btvirt's two controllers and
# bluetoothd in compatibility mode (-C: the local SDP socket that
# libbluetooth's sdp_record_register talks to). bluetoothd leaves the
# adapters powered but not connectable, and a connect to such a peer hangs
# for about 40 s: both are made connectable here. btd_stop ends all three.
btd_start() {
    mkdir -p /run/dbus /var/lib/bluetooth /etc/dbus-1
    cat >/etc/dbus-1/vm-system.conf <<'XML'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
XML
    dbus-daemon --config-file=/etc/dbus-1/vm-system.conf --nofork \
        --nopidfile >"$T/dbus.log" 2>&1 &
    DBUS_PID=$!
    n=100
    while [ $n -gt 0 ] && [ ! -S /run/dbus/system_bus_socket ]; do
        sleep 0.05
        n=$((n - 1))
    done
    [ -S /run/dbus/system_bus_socket ] || { cat "$T/dbus.log"; fail "no D-Bus"; }
    bt_start
    bluetoothd -n -C >"$T/bluetoothd.log" 2>&1 &
    BTD_PID=$!
    for h in $BT_A $BT_B; do
        btd_connectable "${h#hci}" || { cat "$T/bluetoothd.log"; fail "$h is not connectable"; }
    done
    ADDR_A=$(bt_addr "$BT_A")
    ADDR_B=$(bt_addr "$BT_B")
    [ -n "$ADDR_A" ] && [ -n "$ADDR_B" ] || { cat "$T/bluetoothd.log"; fail "no addresses"; }
}

# btd_settings INDEX: the adapter's current settings, as btmgmt shows them
btd_settings() {
    btmgmt --index "$1" info 2>/dev/null | sed -n 's/.*current settings: //p'
}

# btd_connectable INDEX: wait until bluetoothd has powered the adapter
# (powering it first ourselves races with bluetoothd's own set-up, which
# then turns page scan off again), make it connectable, and check that the
# setting still holds a moment later. A connect to an adapter that is not
# connectable hangs, and closing that socket hits a kernel BUG (README).
btd_connectable() {
    n=100
    while [ $n -gt 0 ] && ! btd_settings "$1" | grep -qw powered; do
        sleep 0.1
        n=$((n - 1))
    done
    btd_settings "$1" | grep -qw powered || btmgmt --index "$1" power on >/dev/null 2>&1
    held=0
    n=50
    while [ $n -gt 0 ] && [ $held -lt 3 ]; do
        if btd_settings "$1" | grep -qw connectable; then
            held=$((held + 1))
        else
            held=0
            btmgmt --index "$1" connectable on >/dev/null 2>&1
        fi
        sleep 0.2
        n=$((n - 1))
    done
    [ $held -ge 3 ]
}

btd_stop() {
    kill "$BTD_PID" 2>/dev/null
    wait "$BTD_PID" 2>/dev/null
    bt_stop
    kill "$DBUS_PID" 2>/dev/null
    wait "$DBUS_PID" 2>/dev/null
}
