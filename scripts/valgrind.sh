#!/usr/bin/env bash
# Every unit test under valgrind memcheck: no invalid access, no use of
# uninitialised memory, no definite leak. Uses the build in build/ (run
# scripts/test.sh or cmake first). The randomized simulation runs 3 seeds
# here (SIMSYNC_SIM_SEEDS to change); the sanitizer build runs more. The
# fault loops (store, transport, allocation) stop at call 25 here
# (SIMSYNC_FAULT_MAX; 0: every call). test_faults_alloc_libs is left out:
# it defines malloc itself to fail those of every library, and valgrind
# replaces that malloc with its own.
# Usage: scripts/valgrind.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
command -v valgrind >/dev/null || {
    echo "valgrind: not installed (Debian 12: apt-get install valgrind)" >&2
    exit 2
}
status=0
count=0
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    [ "$(basename "$t")" != test_faults_alloc_libs ] || continue
    count=$((count + 1))
    if ! SIMSYNC_SIM_SEEDS=${SIMSYNC_SIM_SEEDS:-3} SIMSYNC_SOURCE_DIR=$PWD \
        SIMSYNC_FAULT_MAX=${SIMSYNC_FAULT_MAX:-25} \
        valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite "$t" >"$build/valgrind.out" 2>&1; then
        echo "valgrind: $(basename "$t") FAILED:" >&2
        tail -n 30 "$build/valgrind.out" >&2
        status=1
    fi
done
[ $count -gt 0 ] || { echo "valgrind: no unit tests in $build/tests" >&2; exit 2; }
[ $status = 0 ] && echo "valgrind: $count unit test programs clean"
exit $status
