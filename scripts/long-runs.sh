#!/usr/bin/env bash
# Every long run of the robustness suites (docs/robustness.md), one after
# the other, within HOURS: the kill loops (scripts/kill-loops.sh, up to
# 10,000 kills per workload) get half of the time, the link-cut sweep
# (tests/integration/46-cut-sweep.sh: every offset of the first 4 KiB,
# then random offsets until its share ends) a quarter, the fuzz targets
# (scripts/fuzz.sh, needs clang) the last quarter split between them.
# Builds first. Logs: build/long-runs/. Exit 1 if a suite failed (the
# others still run), 2 for a usage error.
#
# Usage: scripts/long-runs.sh [HOURS] [kills|cuts|fuzz]...
#        nice -n 19 scripts/long-runs.sh 12          (beside other work)
#   HOURS  the whole run (default 12); a decimal like 1.5 is fine
#   kills, cuts, fuzz: only these suites (default: all three), the time
#          shared between them in the same proportions
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${1:-12}
shift || true
case "$hours" in
'' | *[!0-9.]* | *.*.*) echo "long-runs: HOURS must be a number" >&2; exit 2 ;;
esac
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(kills cuts fuzz)
weight=0
for p in "${parts[@]}"; do
    case $p in
    kills) weight=$((weight + 2)) ;;
    cuts | fuzz) weight=$((weight + 1)) ;;
    *) echo "long-runs: unknown suite '$p' (kills, cuts, fuzz)" >&2; exit 2 ;;
    esac
done
total=$(awk -v h="$hours" 'BEGIN { printf "%d", h * 3600 }')
[ "$total" -gt 0 ] || { echo "long-runs: HOURS must be more than 0" >&2; exit 2; }
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
logs=build/long-runs
mkdir -p "$logs"
export SIMSYNC=$PWD/build/simsync LINKSHIM=$PWD/build/tests/tools/linkshim
echo "long-runs: $hours h from $(date -u '+%F %T') UTC: ${parts[*]}"
status=0
for p in "${parts[@]}"; do
    case $p in
    kills)
        secs=$((total * 2 / weight))
        scripts/kill-loops.sh "${SIMSYNC_KILLS:-10000}" $((secs / 60)) || status=1 ;;
    cuts)
        secs=$((total / weight))
        t0=$EPOCHSECONDS
        if SIMSYNC_RANDOM_CUTS=${SIMSYNC_RANDOM_CUTS:-1000000} \
            SIMSYNC_CUT_UNTIL=$((EPOCHSECONDS + secs)) \
            bash tests/integration/46-cut-sweep.sh >"$logs/cut-sweep.log" 2>&1; then
            grep '^ok' "$logs/cut-sweep.log" | sed 's/^/long-runs: cut sweep: /'
            echo "long-runs: cut sweep: $((EPOCHSECONDS - t0)) s"
        else
            status=1
            echo "long-runs: cut sweep FAILED; log: $logs/cut-sweep.log" >&2
            tail -n 5 "$logs/cut-sweep.log" >&2
        fi ;;
    fuzz)
        targets=$(find tests/fuzz/corpus -mindepth 1 -maxdepth 1 -type d | wc -l)
        secs=$((total / weight / (targets > 0 ? targets : 1)))
        [ "$secs" -gt 0 ] || secs=1
        scripts/fuzz.sh "$secs" || status=1 ;;
    esac
done
echo "long-runs: finished $(date -u '+%F %T') UTC, status $status"
exit $status
