#!/usr/bin/env bash
# The long run of the kill loops: every workload (sync upload, delta apply,
# backup, restore, erase) SIGKILLed N times at random moments (default
# 10000 each; CI runs 200). Builds first.
# Usage: scripts/kill-loops.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-10000}
case "$kills" in '' | *[!0-9]*) echo "kill-loops: KILLS must be a number" >&2; exit 2 ;; esac
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
(cd build && SIMSYNC_KILLS=$kills ctest --output-on-failure -j"$(nproc)" -R 'integration\.4[1-5]-kill')
