#!/usr/bin/env bash
# The long run of the kill loops: every workload (sync upload, delta apply,
# backup, restore, erase; tests/integration/41-45) SIGKILLed KILLS times
# at random moments (default 10000 each; CI runs 200). With MINUTES, the
# time is shared: each workload stops at the end of its share (what the
# ones before it left, split evenly among those still to run) even if it
# made fewer kills; its last line says how many it made. Builds first.
# Logs: build/long-runs/kill-*.log. Exit 1 if a workload failed (the
# others still run), 2 for a usage error.
#
# Usage: scripts/kill-loops.sh [KILLS [MINUTES]]
#        nice -n 19 scripts/kill-loops.sh 10000 600   (beside other work)
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-10000}
minutes=${2:-}
case "$kills$minutes" in
'' | *[!0-9]*)
    echo "kill-loops: KILLS and MINUTES must be whole numbers" >&2
    exit 2 ;;
esac
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
logs=build/long-runs
mkdir -p "$logs"
end=
[ -z "$minutes" ] || end=$((EPOCHSECONDS + minutes * 60))
export SIMSYNC=$PWD/build/simsync LINKSHIM=$PWD/build/tests/tools/linkshim
status=0
tests=(tests/integration/4[1-5]-kill-*.sh)
left=${#tests[@]}
for t in "${tests[@]}"; do
    name=$(basename "$t" .sh)
    until=
    [ -z "$end" ] || until=$((EPOCHSECONDS + (end - EPOCHSECONDS) / left))
    t0=$EPOCHSECONDS
    if SIMSYNC_KILLS=$kills SIMSYNC_KILL_UNTIL=$until bash "$t" \
        >"$logs/kill-$name.log" 2>&1; then
        echo "kill-loops: $name: $(tail -n 1 "$logs/kill-$name.log") [$((EPOCHSECONDS - t0)) s]"
    else
        status=1
        echo "kill-loops: $name FAILED after $((EPOCHSECONDS - t0)) s; log: $logs/kill-$name.log" >&2
        tail -n 5 "$logs/kill-$name.log" >&2
    fi
    left=$((left - 1))
done
exit $status
