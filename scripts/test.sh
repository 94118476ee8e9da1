#!/usr/bin/env bash
# Set up, build and run the whole test suite (unit + integration + fuzz
# corpus replay), first in a normal build (and the unit tests under
# valgrind), then again under ASan+UBSan, then every fuzz target for a
# short run (clang, libFuzzer).
# Usage: scripts/test.sh            (SIMSYNC_SIM_SEEDS=N for more seeds)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
scripts/valgrind.sh build
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSIMSYNC_SANITIZE=ON \
    >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && SIMSYNC_SIM_SEEDS=${SIMSYNC_SIM_SEEDS_ASAN:-40} \
    SIMSYNC_KILLS=${SIMSYNC_KILLS_ASAN:-30} \
    SIMSYNC_CUTS=${SIMSYNC_CUTS_ASAN:-512} SIMSYNC_RANDOM_CUTS=50 ctest --output-on-failure -j"$jobs" \
    -LE vm)  # the VM ran above; under ASan it would only be slower
scripts/fuzz.sh "${SIMSYNC_FUZZ_SECONDS:-15}"
