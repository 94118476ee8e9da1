#!/usr/bin/env bash
# Link cuts at every offset: one linkshim cuts its Nth connection after N-1
# bytes (both directions counted), so terminal A's syncs through it are cut
# at every offset of the first 4 KiB (handshake, Hello, knowledge, batches)
# in turn; after each cut a direct sync must complete. Then 200 cuts at
# random offsets of a sync carrying chunked photos: after each, the next
# sync completes and re-sends at most one chunk the hub already had.
# SIMSYNC_CUTS sets the sweep length (default 4096), SIMSYNC_RANDOM_CUTS
# the random ones (default 200); SIMSYNC_CUT_UNTIL (seconds since the
# epoch) ends the random cuts at that moment even if fewer were made (the
# long run, scripts/long-runs.sh, shares its hours that way).
. "$(dirname "$0")/lib.sh"

CUTS=${SIMSYNC_CUTS:-4096}
RANDOM_CUTS=${SIMSYNC_RANDOM_CUTS:-200}
CUT_UNTIL=${SIMSYNC_CUT_UNTIL:-}
json_field() { printf '%s' "$1" | grep -o "\"$2\":[a-z0-9]*" | head -n1 | cut -d: -f2; }
hub_chunks() { json_field "$(ss --home "$T/hub" --json hub stats)" chunks; }

start_hub
new_sim sim 44123000960
for t in A B; do new_terminal $t; insert $t sim; register $t; done
for i in $(seq 1 20); do put A contacts "c$i.vcf" "BEGIN:VCARD c$i"; done
sync_ok A

# ---------------------------------------------------------------- sweep
start_shim sweep --cut-after 0 --cut-all --cut-step 1
# Each round changes one contact with 5000 random characters (about 4 KB
# sealed), so the session runs past 4 KiB and every offset cuts it.
cut=0
for k in $(seq 0 $((CUTS - 1))); do
    put A contacts "c$((k % 20 + 1)).vcf" "BEGIN:VCARD c$((k % 20 + 1)) v$k $(head -c 3750 /dev/urandom | base64 -w0)"
    if ss --home "$T/A" sync --hub "$SHIM_ADDR" >/dev/null 2>"$T/cut.err"; then
        : # the whole sync fitted before offset k
    else
        rc=$?
        [ $rc = 4 ] || fail "cut at offset $k: exit $rc: $(cat "$T/cut.err")"
        cut=$((cut + 1))
    fi
    out=$(ss --home "$T/A" --json sync 2>"$T/sync.err") \
        || fail "the sync after the cut at offset $k failed: $(cat "$T/sync.err")"
done
sync_ok B
same_tree A B contacts
[ $cut -gt 0 ] || fail "no sync was cut"
ok "$CUTS offsets: $cut syncs cut (exit 4), every next sync completed; B equals A"
stop_shims

# --------------------------------------------------------------- random
max=0
r=0
while [ $r -lt "$RANDOM_CUTS" ]; do
    [ -z "$CUT_UNTIL" ] || [ "$EPOCHSECONDS" -lt "$CUT_UNTIL" ] || break
    r=$((r + 1))
    [ $((r % 500)) != 0 ] || echo "... $r random cuts, ${SECONDS} s"
    mkdir -p "$T/A/data/archive"
    rm -f "$T/A/data/archive/r$((r - 1))-"*.jpg
    for i in 1 2 3; do head -c 200000 /dev/urandom >"$T/A/data/archive/r$r-$i.jpg"; done
    # The size of this sync (both directions), to cut anywhere in it.
    [ $max -gt 0 ] || max=700000
    off=$(( (RANDOM * 32768 + RANDOM) % max ))
    start_shim "rnd$r" --cut-after "$off"
    c0=$(hub_chunks)
    ss --home "$T/A" sync --hub "$SHIM_ADDR" >/dev/null 2>&1 || true
    stop_shims
    c1=$(hub_chunks)
    out=$(ss --home "$T/A" --json sync) || fail "sync after a cut at $off: $out"
    c2=$(hub_chunks)
    sent=$(json_field "$out" chunks_sent)
    resent=$((sent - (c2 - c1)))
    [ $resent -le 1 ] || fail "cut at byte $off: $resent chunks re-sent ($sent sent, the hub gained $((c2 - c1)), $((c1 - c0)) before)"
done
sync_ok B
same_tree A B archive
ok "$r cuts at random offsets (${SECONDS} s in all): each next sync completed and re-sent at most one chunk"
