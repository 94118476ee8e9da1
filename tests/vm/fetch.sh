#!/usr/bin/env bash
# fetch.sh -- download (never install) the Debian 12 packages the test VM
# boots and runs, and unpack the parts it needs into $CACHE/root.
#
#   tests/vm/fetch.sh            # CACHE: $SIMSYNC_VM_CACHE, else
#                                # ${XDG_CACHE_HOME:-~/.cache}/simsync-vm
#
# The kernel is the version linux-image-amd64 points to today; once its
# .deb is in the cache nothing is downloaded again (delete the cache to
# move to a newer kernel). Exit 0 when everything is there, 77 when a
# package cannot be downloaded (no network, no apt lists): the caller
# skips then, it does not pass.
set -euo pipefail
CACHE=${SIMSYNC_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simsync-vm}
mkdir -p "$CACHE/debs" "$CACHE/root"
cd "$CACHE/debs"

# The kernel: reuse the one in the cache, else ask apt which one is current.
kdeb=$(ls linux-image-[0-9]*.deb 2>/dev/null | head -n1 || true)
if [ -z "$kdeb" ]; then
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
           awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$kpkg" ]; then
        echo "fetch.sh: apt knows no linux-image-amd64 (run apt-get update)" >&2
        exit 77
    fi
    want=$kpkg
else
    want=
fi
# What the guest runs besides simsync: busybox for the shell and tools,
# btvirt (emulated controllers), hciconfig/btmgmt/sdptool and bluetoothd,
# and a D-Bus daemon for bluetoothd.
for p in $want busybox-static bluez bluez-test-tools dbus-daemon; do
    ls "${p}"_*.deb >/dev/null 2>&1 && continue
    # apt drops privileges to _apt for downloads when it can
    chown _apt: . 2>/dev/null || true
    if ! apt-get download -q "$p" >/dev/null 2>"$CACHE/apt-download.log"; then
        echo "fetch.sh: cannot download $p:" >&2
        sed 's/^/    /' "$CACHE/apt-download.log" >&2
        exit 77
    fi
done

for d in *.deb; do
    [ -e "$CACHE/root/.unpacked.$d" ] && continue
    case $d in
    linux-image-*)
        # The kernel and only the module trees the VM can load (the whole
        # package is ~400 MB unpacked; this is ~60 MB).
        dpkg-deb --fsys-tarfile "$d" | tar -x -C "$CACHE/root" --wildcards \
            './boot/vmlinuz-*' './lib/modules/*/modules.*' \
            './lib/modules/*/kernel/crypto/*' \
            './lib/modules/*/kernel/lib/*' \
            './lib/modules/*/kernel/net/bluetooth/*' \
            './lib/modules/*/kernel/net/rfkill/*' \
            './lib/modules/*/kernel/drivers/bluetooth/*' \
            './lib/modules/*/kernel/drivers/usb/*' \
            './lib/modules/*/kernel/fs/configfs/*' ;;
    *)
        dpkg-deb -x "$d" "$CACHE/root" ;;
    esac
    touch "$CACHE/root/.unpacked.$d"
done
echo "fetch.sh: $(ls ./*.deb | wc -l) packages in $CACHE ($(du -sh "$CACHE" | cut -f1))"
