#!/usr/bin/env bash
# mkinitramfs.sh -- the test VM's initramfs: busybox, the kernel modules
# of modules.list, the BlueZ and D-Bus programs from the fetched packages,
# the given programs (simsync), every shared library they need (copied
# from this machine, which is the same Debian 12), and the guest init and
# tests of tests/vm/guest.
#
#   tests/vm/mkinitramfs.sh OUT.cpio.gz PROGRAM...
#
# Env: SIMSYNC_VM_CACHE (see fetch.sh), SIMSYNC_VM_ONLY (keep only the
# guest tests whose file name contains this text), SIMSYNC_VM_BENCH=1
# (add the benchmarks of guest/bench).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${SIMSYNC_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simsync-vm}
K=$CACHE/root
out=$1
shift
kver=$(ls "$K/lib/modules" | head -n1)
[ -n "$kver" ] || { echo "mkinitramfs.sh: no kernel in $K (run fetch.sh)" >&2; exit 1; }

R=$(mktemp -d "${TMPDIR:-/tmp}/simsync-vm-root.XXXXXX")
trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,tmp,run,var/lib,tests,lib/vm}

cp "$K/bin/busybox" "$R/bin/busybox"
for applet in $("$R/bin/busybox" --list); do
    [ -e "$R/bin/$applet" ] || ln -s busybox "$R/bin/$applet"
done

# A program and the libraries the dynamic loader would map for it.
add_program() {
    local prog=$1 lib
    [ -x "$prog" ] || { echo "mkinitramfs.sh: no program $prog" >&2; exit 1; }
    if ldd "$prog" 2>&1 | grep -q 'not found'; then
        echo "mkinitramfs.sh: $prog needs libraries this machine lacks:" >&2
        ldd "$prog" | grep 'not found' >&2
        echo "(run scripts/deps.sh)" >&2
        exit 1
    fi
    cp "$prog" "$R/usr/local/bin/"
    for lib in $(ldd "$prog" | grep -o '/[^ ]*'); do
        [ -e "$R$lib" ] || cp -L --parents "$lib" "$R"
    done
}
for prog in "$K/usr/bin/btvirt" "$K/bin/hciconfig" "$K/usr/bin/btmgmt" \
            "$K/usr/bin/sdptool" "$K/usr/libexec/bluetooth/bluetoothd" \
            "$K/usr/bin/dbus-daemon" "$@"; do
    add_program "$prog"
done

# Modules in dependency order, as modprobe would load them.
mods=$(sed 's/#.*//' "$here/modules.list" | tr -s ' \t' '\n' | grep -v '^$')
[ -e "$K/lib/modules/$kver/modules.dep" ] || depmod -b "$K" "$kver"
: > "$R/etc/modules.order"
for m in $mods; do
    modprobe -d "$K" -S "$kver" --show-depends "$m" |
        awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
    rel=${ko#"$K"}
    mkdir -p "$R$(dirname "$rel")"
    cp "$ko" "$R$rel"
    echo "$rel" >> "$R/etc/modules.order"
done
# modules.dep for the subset, so the kernel's own module requests
# (crypto-*, net-pf-31-proto-3) find them through busybox modprobe.
cp "$K/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} \
   "$R/lib/modules/$kver/"
depmod -b "$R" "$kver"
ln -sf ../bin/busybox "$R/sbin/modprobe"

echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
cp "$here/guest/init" "$R/init"
cp "$here"/guest/lib/*.sh "$R/lib/vm/"
cp "$here"/guest/tests/[0-9]*.sh "$R/tests/"
# Benchmarks only when asked (bench/bench_vm_links.sh): they are slow.
if [ "${SIMSYNC_VM_BENCH:-0}" = 1 ]; then
    cp "$here"/guest/bench/[0-9]*.sh "$R/tests/"
fi
if [ -n "${SIMSYNC_VM_ONLY:-}" ]; then
    find "$R/tests" -name '*.sh' ! -name "*${SIMSYNC_VM_ONLY}*" -delete
fi
chmod +x "$R/init" "$R"/tests/*.sh 2>/dev/null || true
(cd "$R" && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet) |
    gzip -1 > "$out"
echo "mkinitramfs.sh: $out, $(du -h "$out" | cut -f1), $(wc -l < "$R/etc/modules.order") modules, kernel $kver"
