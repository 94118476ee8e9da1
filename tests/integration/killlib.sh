# killlib.sh -- kill loops (sourced after lib.sh): run a workload, SIGKILL
# it at a random moment, start it again, until it completes by itself;
# count the kills. The caller checks its invariants after every kill and
# after every completion. SIMSYNC_KILLS sets how many kills each workload
# gets (default 200; the long run: scripts/kill-loops.sh 10000).
KILLS=${SIMSYNC_KILLS:-200}
KILLED=0
RUNS=0

# rnd_ms MAX: a random whole number of milliseconds in [0, MAX).
rnd_ms() { echo $(( (RANDOM * 32768 + RANDOM) % $1 )); }

# killed_run CMD...: run CMD and SIGKILL it after a random delay in
# [0, KILL_MAX_MS) ms. Returns 0 when CMD completed (exit 0) first, 1 when
# the kill stopped it; any other outcome fails the test. A completed run
# sets KILL_MAX_MS to a little over its duration, so later kills land
# anywhere in a run; five kills in a row double it. "ss" runs simsync itself (a shell function would
# leave the program running when its subshell is killed). Output of the
# last run: $T/kr.out, $T/kr.err.
KILL_MAX_MS=${KILL_MAX_MS:-200}
KILL_STREAK=0
killed_run() {
    local pid killer d rc=0 t0 t1
    [ "$1" = ss ] && { shift; set -- "$SIMSYNC" "$@"; }
    RUNS=$((RUNS + 1))
    d=$(rnd_ms "$KILL_MAX_MS")
    t0=$(date +%s%N)
    "$@" >"$T/kr.out" 2>"$T/kr.err" &
    pid=$!
    (sleep "$(printf '%d.%03d' $((d / 1000)) $((d % 1000)))"
        kill -9 "$pid" 2>/dev/null) &
    killer=$!
    wait "$pid" 2>/dev/null || rc=$?
    t1=$(date +%s%N)
    kill "$killer" 2>/dev/null
    wait "$killer" 2>/dev/null
    case $rc in
    0)
        KILL_MAX_MS=$(( (t1 - t0) / 1000000 * 6 / 5 + 5 ))
        KILL_STREAK=0
        return 0 ;;
    137)
        KILLED=$((KILLED + 1))
        # Five kills in a row: the runs take longer than the window; widen
        # it so that some complete.
        KILL_STREAK=$((KILL_STREAK + 1))
        [ $KILL_STREAK -lt 5 ] || { KILL_MAX_MS=$((KILL_MAX_MS * 2)); KILL_STREAK=0; }
        return 1 ;;
    *) fail "after $KILLED kills, '$*' exited $rc: $(cat "$T/kr.out" "$T/kr.err")" ;;
    esac
}

# tree_sums DIR: "sha256  path" of every regular file below DIR (temporary
# files of interrupted writes excluded), sorted by path.
tree_sums() {
    (cd "$1" && find . -type f ! -name '.simsync-tmp*' -print0 | LC_ALL=C sort -z |
        xargs -0 -r sha256sum)
}

# files_known DIR SUMS: every file below DIR (temporaries excluded) has,
# at its path, one of the contents listed in SUMS ("sha  ./path" lines):
# nothing half-written under an item's name.
files_known() {
    tree_sums "$1" | python3 -c '
import sys
known = set(l.rstrip("\n") for l in open(sys.argv[1]))
bad = [l.rstrip("\n") for l in sys.stdin if l.rstrip("\n") not in known]
if bad:
    print("\n".join(bad[:5]), file=sys.stderr)
    sys.exit(1)' "$2"
}
