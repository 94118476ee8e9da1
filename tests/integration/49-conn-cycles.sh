#!/usr/bin/env bash
# No fd or LMDB reader leaks in the hub (issue 6 item 5): SIMSYNC_CYCLES
# (default 10000) connections one after the other, closed at once: most
# right after connecting, some after the first handshake message, some
# after a whole Noise handshake, some after a Hello the hub looks up and
# refuses. Before and after (once the hub has finished with them): the
# same number of open fds (/proc/PID/fd) and of LMDB reader slots of the
# hub's process (mdb_stat -r), and the hub still serves a real sync.
. "$(dirname "$0")/lib.sh"

HUBPROBE=${HUBPROBE:-$(dirname "$LINKSHIM")/hubprobe}
[ -x "$HUBPROBE" ] || fail "no hubprobe at $HUBPROBE (build the hubprobe target)"
command -v mdb_stat >/dev/null || fail "mdb_stat not found (Debian package lmdb-utils)"
CYCLES=${SIMSYNC_CYCLES:-10000}

fds() { ls "/proc/$HUB_PID/fd" | wc -l; }
# readers: reader slots of the hub's process in its store's lock file.
readers() {
    mdb_stat -r "$T/hub/store" 2>/dev/null | awk -v p="$HUB_PID" '$1 == p' | wc -l
}
threads() { ls "/proc/$HUB_PID/task" | wc -l; }

start_hub
new_sim sim 44123000470
new_terminal A; insert A sim; register A
new_terminal B; insert B sim; register B
put A contacts a.vcf "FN:A"
sync_ok A; sync_ok B
fd0=$(fds); rd0=$(readers); th0=$(threads)

"$HUBPROBE" cycles "$HUB_ADDR" --count "$CYCLES" --every 10 >"$T/cycles.out" 2>&1 \
    || fail "cycles: $(cat "$T/cycles.out")"
# The hub ends each connection on its own thread: wait until they are gone.
for _ in $(seq 1 100); do
    [ "$(threads)" -le "$th0" ] && [ "$(fds)" -le "$fd0" ] && break
    sleep 0.1
done
fd1=$(fds); rd1=$(readers)
[ "$fd1" -le "$fd0" ] || { ls -l "/proc/$HUB_PID/fd" >&2; fail "hub fds grew: $fd0 -> $fd1"; }
[ "$rd1" -le "$rd0" ] || { mdb_stat -r "$T/hub/store" >&2; fail "LMDB readers grew: $rd0 -> $rd1"; }
kill -0 "$HUB_PID" || fail "the hub died"
put A contacts b.vcf "FN:B"
sync_ok A; sync_ok B
same_tree A B contacts
ok "$(sed 's/^result: //' "$T/cycles.out"): hub fds $fd0 -> $fd1, LMDB readers $rd0 -> $rd1, threads back to $(threads); the hub still syncs"
