#!/usr/bin/env bash
# kill -9 of a terminal in the middle of a sync, then resume: the next sync
# completes without re-sending what the hub had committed, and another
# terminal gets every byte.
. "$(dirname "$0")/lib.sh"

start_hub
new_sim sim 31001222333444
for t in A B; do new_terminal $t; insert $t sim; register $t; done
mkdir -p "$T/A/data/archive"
for i in $(seq 1 12); do
    head -c 4000000 /dev/urandom >"$T/A/data/archive/photo$i.jpg"
done
total=$((12 * 4000000))

# Start a sync and kill it hard once the hub has committed part of it
# (watch the hub's store grow), not at a guessed moment.
hubdb="$T/hub/store/data.mdb"
killed=0
for attempt in 1 2 3; do
    base=$(stat -c %s "$hubdb")
    "$SIMSYNC" --home "$T/A" sync >/dev/null 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [ $(( $(stat -c %s "$hubdb") - base )) -gt 10000000 ]; then
            kill -9 "$pid" 2>/dev/null && killed=1
            break
        fi
        sleep 0.01
    done
    wait "$pid" 2>/dev/null
    [ $killed = 1 ] && break
    # Finished before the kill: start over with fresh files.
    for i in $(seq 1 12); do head -c 4000000 /dev/urandom >"$T/A/data/archive/photo$i.jpg"; done
done
[ $killed = 1 ] || fail "could not interrupt a sync"

ss --home "$T/A" --json sync >"$T/resume.json" || fail "resume failed: $(cat "$T/resume.json")"
sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent_bytes"])' "$T/resume.json")
echo "resumed sync sent $sent of $total bytes"
[ "$sent" -lt "$total" ] || fail "resume re-sent everything ($sent bytes)"
sync_ok B
same_tree A B archive
ok "killed mid-sync, resumed without re-sending committed chunks, B identical"

# The same on the receiving side: kill B's download once part of it is
# committed (a batch stops taking photos past 8 MiB of chunks, so three
# 4 MB photos: a fourth photo in B's folder means the first batch is
# committed; not all six are there); status
# then shows what the hub still has for B; resume.
pending_down() {
    ss --home "$T/B" --json status | grep -o '"name":"archive"[^}]*' \
        | grep -o '"pending_down":[0-9]*' | cut -d: -f2
}
# B downloads through a link slowed to 6 MB/s, so the moment to kill it
# (4 or 5 of 6 photos there) lasts about a second even on a busy machine.
start_shim slowdown --rate 6000000
killed=0
for attempt in 1 2 3; do
    for i in 13 14 15 16 17 18; do head -c 4000000 /dev/urandom >"$T/A/data/archive/photo$i.jpg"; done
    sync_ok A
    "$SIMSYNC" --home "$T/B" sync --hub "$SHIM_ADDR" >/dev/null 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        got=$(ls "$T/B/data/archive" | grep -c -E '^photo1[3-8]\.jpg$' || true)
        if [ "$got" -ge 4 ] && [ "$got" -lt 6 ]; then
            kill -9 "$pid" 2>/dev/null && killed=1
            break
        fi
        sleep 0.005
    done
    wait "$pid" 2>/dev/null
    got=$(ls "$T/B/data/archive" | grep -c -E '^photo1[3-8]\.jpg$' || true)
    [ $killed = 1 ] && [ "$got" -lt 6 ] && break
    killed=0
done
[ $killed = 1 ] || fail "could not interrupt a download"
down=$(pending_down)
[ "${down:-0}" -ge 1 ] || fail "status shows nothing pending down after a cut download"
echo "after the cut: $got of 6 photos on B, status: $down pending down"
sync_ok B
same_tree A B archive
[ "$(pending_down)" = 0 ] || fail "still pending down after a full sync: $(pending_down)"
ok "killed mid-download: status shows $down pending down; resumed, identical, 0 pending"
