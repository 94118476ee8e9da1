#!/usr/bin/env bash
# run.sh -- the transport tests on real kernel stacks: boot Debian 12's own
# kernel (linux-image-amd64, downloaded, never installed) under QEMU with a
# busybox initramfs holding simsync, and run the guest tests of
# tests/vm/guest/tests there (README.md in this folder).
#
#   tests/vm/run.sh PATH/TO/simsync
#
# Exit 0 when every guest test passed and the kernel log is clean, 1 on any
# failure (the console is printed), 77 when the VM cannot run here at all
# (the kernel cannot be downloaded): ctest reports that as skipped.
#
# Env: SIMSYNC_VM_CACHE (downloads; see fetch.sh), SIMSYNC_VM_KEEP=1 (keep
# the work folder with the initramfs and console.log), SIMSYNC_VM_ONLY=TEXT
# (only the guest tests whose name contains TEXT), SIMSYNC_VM_SMP (vCPUs,
# default 1), SIMSYNC_VM_TIMEOUT (seconds per guest test, default 300),
# SIMSYNC_VM_ACCEL (tcg, default: /dev/kvm on some hosts cannot boot a
# stock kernel; kvm where it can).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
simsync=${1:?usage: run.sh PATH/TO/simsync [TEST-PROGRAM...]}
simsync=$(readlink -f "$simsync")
shift
extra=()
for p in "$@"; do extra+=("$(readlink -f "$p")"); done

for tool in qemu-system-x86_64 cpio depmod modprobe dpkg-deb apt-get gzip; do
    if ! command -v "$tool" >/dev/null 2>&1 &&
       ! [ -x "/sbin/$tool" ] && ! [ -x "/usr/sbin/$tool" ]; then
        echo "run.sh: FAIL: $tool is missing; install the test packages" \
             "with scripts/deps.sh" >&2
        exit 1
    fi
done
export PATH=$PATH:/sbin:/usr/sbin

rc=0
"$here/fetch.sh" || rc=$?
if [ $rc -eq 77 ]; then
    echo "run.sh: SKIP: the kernel and tools for the VM cannot be downloaded" \
         "here (network or apt lists); nothing was tested" >&2
    exit 77
elif [ $rc -ne 0 ]; then
    echo "run.sh: FAIL: fetch.sh failed ($rc)" >&2
    exit 1
fi
CACHE=${SIMSYNC_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simsync-vm}

work=$(mktemp -d "${TMPDIR:-/tmp}/simsync-vm.XXXXXX")
if [ "${SIMSYNC_VM_KEEP:-0}" = 1 ]; then
    echo "run.sh: keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi
t0=$(date +%s)
"$here/mkinitramfs.sh" "$work/initramfs.cpio.gz" "$simsync" ${extra[@]+"${extra[@]}"}

kernel=$(ls "$CACHE"/root/boot/vmlinuz-* | head -n1)
case ${SIMSYNC_VM_ACCEL:-tcg} in
kvm) accel=(-accel kvm -cpu host) ;;
*)   accel=(-accel tcg,thread=multi -cpu max) ;;
esac
per_test=${SIMSYNC_VM_TIMEOUT:-300}
ntests=$(ls "$here"/guest/tests/[0-9]*.sh | wc -l)
# Boot, every test at its limit, and some slack: a hung guest still ends.
limit=$((60 + (ntests + 1) * per_test))  # + 1: a benchmark, if any
t1=$(date +%s)
qrc=0
timeout "$limit" qemu-system-x86_64 "${accel[@]}" -smp "${SIMSYNC_VM_SMP:-1}" \
    -m 1024 -nodefaults -no-user-config -display none -no-reboot \
    -serial "file:$work/console.log" \
    -kernel "$kernel" -initrd "$work/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 vm.timeout=$per_test" \
    </dev/null || qrc=$?
t2=$(date +%s)
tr -d '\r' < "$work/console.log" > "$work/console.txt"
cat "$work/console.txt"
echo "run.sh: initramfs $((t1 - t0)) s, VM $((t2 - t1)) s (qemu exit $qrc)"

bad='Oops|BUG:|kernel BUG|WARNING:|general protection|list_del corruption|Kernel panic'
if grep -qE "$bad" "$work/console.txt"; then
    echo "run.sh: FAIL: the guest kernel oopsed, hit a BUG or warned:" >&2
    grep -E "$bad" "$work/console.txt" | head -n 5 >&2
    exit 1
fi
summary=$(grep -E '^vm-summary: ' "$work/console.txt" | tail -n1 || true)
if [ -z "$summary" ]; then
    echo "run.sh: FAIL: the VM ended without a summary (crash, panic or" \
         "over ${limit} s)" >&2
    exit 1
fi
grep -E '^vm-test ' "$work/console.txt"
if grep -qE '^vm-test FAIL' "$work/console.txt"; then
    echo "run.sh: FAIL: $summary"
    exit 1
fi
if ! grep -qE '^vm-test PASS [0-9]' "$work/console.txt"; then
    echo "run.sh: FAIL: no guest test passed ($summary)"
    exit 1
fi
echo "run.sh: OK: $summary"
