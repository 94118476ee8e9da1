#!/usr/bin/env bash
# bench_vm_links.sh -- sync between two handsets over RFCOMM and over TCP
# on Debian's own kernel in the test VM (tests/vm): 1,000 contacts
# (initial), then 10 edited contacts; bytes on the wire (both directions,
# handshake included) and the sync's own time, next to the bytes of the
# same contacts as vCards (what PBAP or OBEX would carry). Prints a
# Markdown table.
#
# Usage: bench/bench_vm_links.sh [SIMSYNC_BINARY]  (default build/simsync)
# The VM runs under software emulation (TCG) on one virtual CPU, and the
# controllers are emulated by btvirt: times are the VM's, far slower than
# a phone, and say nothing of a radio's bandwidth. Bytes are exact.
set -euo pipefail
cd "$(dirname "$0")/.."
simsync=${1:-build/simsync}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
SIMSYNC_VM_BENCH=1 SIMSYNC_VM_ONLY=90-bench SIMSYNC_VM_TIMEOUT=900 \
    tests/vm/run.sh "$simsync" >"$out" 2>&1 ||
    { cat "$out" >&2; echo "bench_vm_links.sh: the VM run failed" >&2; exit 1; }
val() { # val LINK STEP KEY
    sed -n "s/^bench: $1 $2 .*$3=\([0-9.]*\).*/\1/p" "$out" | head -n1
}
vc_init=$(val vcard initial bytes)
vc_edit=$(val vcard edit10 bytes)
echo "| link | sync | items | wire bytes | of the vCards | handshake | time in the VM |"
echo "|---|---|---:|---:|---:|---:|---:|"
for link in rfcomm tcp; do
    for step in initial edit10; do
        vc=$vc_init; [ $step = edit10 ] && vc=$vc_edit
        w=$(val $link $step wire)
        printf '| %s | %s | %s | %s | %s%% | %s | %s s |\n' "$link" \
            "$([ $step = initial ] && echo "1,000 contacts" || echo "10 edited")" \
            "$(val $link $step items)" "$w" \
            "$(awk "BEGIN{printf \"%.0f\", 100 * $w / $vc}")" \
            "$(val $link $step handshake)" "$(val $link $step seconds)"
    done
done
echo
echo "vCard bytes: 1,000 contacts $vc_init, the 10 edited $vc_edit."
