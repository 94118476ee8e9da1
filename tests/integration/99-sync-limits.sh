#!/usr/bin/env bash
# Per-sync limits: a byte limit splits a large upload, and a large
# download, over several runs that each stop at a committed checkpoint and
# end exactly where one unlimited run ends; one-way syncs move data one way
# only. Bad limits are usage errors.
. "$(dirname "$0")/lib.sh"

json_field() { printf '%s' "$1" | grep -o "\"$2\":[a-z0-9]*" | head -n1 | cut -d: -f2; }

start_hub
new_sim sim 44123000960
for t in A B C; do new_terminal $t; insert $t sim; register $t; done

expect_exit 2 ss --home "$T/A" sync --max-bytes 12x
grep -q "not a size" "$T/last.err" || fail "bad size: $(cat "$T/last.err")"
expect_exit 2 ss --home "$T/A" sync --max-time soon
expect_exit 2 ss --home "$T/A" sync --upload-only --download-only
ok "bad limits and directions: exit 2"

# 24 photos of 256 KiB (incompressible) and 40 contacts: about 6 MiB.
mkdir -p "$T/A/data/archive/2026"
for i in $(seq -w 1 24); do
    head -c 262144 /dev/urandom >"$T/A/data/archive/2026/p$i.jpg"
done
for i in $(seq 1 40); do put A contacts "c$i.vcf" "BEGIN:VCARD c$i"; done

# Upload in pieces of at most about 1 MiB.
runs=0
while :; do
    runs=$((runs + 1))
    [ $runs -le 30 ] || fail "the limited upload never completed"
    out=$(ss --home "$T/A" --json sync --upload-only --max-bytes 1M) \
        || fail "limited upload run $runs: $out"
    [ "$(json_field "$out" complete)" = true ] && break
    sent=$(json_field "$out" sent_bytes)
    # A run stops at the first checkpoint past the limit: one batch more
    # at most (8 MiB of chunks is the batch cap; here far less).
    [ "$sent" -gt 0 ] || fail "a limited run made no progress: $out"
done
[ $runs -ge 4 ] || fail "1 MiB limit, 6 MiB of data, but only $runs runs"
ok "a 1 MiB limit split the upload over $runs runs"

# B downloads in limited pieces, C in one unlimited run: identical.
runs=0
while :; do
    runs=$((runs + 1))
    [ $runs -le 30 ] || fail "the limited download never completed"
    out=$(ss --home "$T/B" --json sync --download-only --max-bytes 1M) \
        || fail "limited download run $runs: $out"
    [ "$(json_field "$out" complete)" = true ] && break
done
[ $runs -ge 4 ] || fail "only $runs limited download runs"
sync_ok C
for cls in archive contacts; do same_tree B C $cls; same_tree A C $cls; done
ok "a 1 MiB limit split the download over $runs runs; the result equals one unlimited sync"

# One-way: an edit on B goes up with --upload-only and does not come down
# to A in A's upload-only sync; A's download-only sync brings it.
put B contacts c1.vcf "BEGIN:VCARD c1 edited on B"
out=$(ss --home "$T/B" --json sync --upload-only) || fail "B upload: $out"
[ "$(json_field "$out" sent_items)" = 1 ] || fail "B upload: $out"
out=$(ss --home "$T/A" --json sync --upload-only) || fail "A upload-only: $out"
[ "$(json_field "$out" recv_items)" = 0 ] || fail "upload-only received: $out"
grep -q "edited on B" "$T/A/data/contacts/c1.vcf" && fail "upload-only changed A"
out=$(ss --home "$T/A" --json sync --download-only) || fail "A download-only: $out"
[ "$(json_field "$out" recv_items)" = 1 ] || fail "download-only: $out"
grep -q "edited on B" "$T/A/data/contacts/c1.vcf" || fail "download-only did not bring B's edit"
ok "one-way syncs move data one way only"
