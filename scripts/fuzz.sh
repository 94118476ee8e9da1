#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each for a while.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 20; hours: 3600 or more)
#   TARGET   frame blob noise envelope manifest record name pack (default: all)
#
# Runs from a copy of tests/fuzz/corpus/<target> in build-fuzz/corpus, so
# the inputs the fuzzer finds stay out of the repository. A crash, leak,
# timeout or out-of-memory input is written to build-fuzz/crashes/<target>/
# and the script fails; to keep it as a regression test, copy the file into
# tests/fuzz/corpus/<target>/ under a name that says what it is (ctest
# replays that corpus in every build).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] ||
    targets=(frame blob noise envelope manifest record name pack)
case "$secs" in
'' | *[!0-9]*) echo "fuzz: SECONDS must be a whole number" >&2; exit 2 ;;
esac
command -v clang >/dev/null || {
    echo "fuzz: needs clang (Debian 12: apt-get install clang" \
        "libclang-rt-14-dev)" >&2
    exit 2
}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSIMSYNC_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target \
    $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null
status=0
for t in "${targets[@]}"; do
    [ -d "tests/fuzz/corpus/$t" ] || { echo "fuzz: no target $t" >&2; exit 2; }
    work=build-fuzz/corpus/$t
    out=build-fuzz/crashes/$t
    mkdir -p "$work" "$out"
    log=build-fuzz/$t.log
    # -rss_limit_mb: a decoder that lets a bomb through fails here.
    if build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$secs" \
        -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$out/" "$work" "tests/fuzz/corpus/$t" \
        >"$log" 2>&1; then
        echo "fuzz: $t: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' \
            "$log" | grep -o '[0-9]*$') runs in ${secs} s, no failure"
    else
        status=1
        echo "fuzz: $t FAILED; the input is in $out/, the log in $log:" >&2
        grep -E 'ERROR|check failed|SUMMARY' "$log" | head -n 5 >&2 || true
    fi
done
exit $status
