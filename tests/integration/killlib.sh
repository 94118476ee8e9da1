# killlib.sh -- kill loops (sourced after lib.sh): run a workload, SIGKILL
# it at a random moment, start it again, until it completes by itself;
# count the kills. The caller checks its invariants after every kill and
# after every completion.
#
# SIMSYNC_KILLS sets how many kills each workload gets (default 200; the
# long run: scripts/kill-loops.sh). SIMSYNC_KILL_UNTIL (seconds since the
# epoch) ends a loop at the first round boundary past that moment even if
# fewer kills were made, so that a long run can share its hours between
# the workloads; the last line says how many kills were made.
# SIMSYNC_KILL_TRACE=1 prints every run's kill moment, window, exit status
# and duration on stderr.
KILLS=${SIMSYNC_KILLS:-200}
KILL_UNTIL=${SIMSYNC_KILL_UNTIL:-}
KILLED=0
RUNS=0
KILLED_EARLY=0
KILLRUN=${KILLRUN:-$(dirname "$SIMSYNC")/tests/tools/killrun}
TREESUM=${TREESUM:-$(dirname "$SIMSYNC")/tests/tools/treesum}
[ -x "$KILLRUN" ] && [ -x "$TREESUM" ] \
    || fail "killrun and treesum are not built next to $SIMSYNC (cmake --build build)"

# rnd_us MAX: a random whole number in [0, MAX).
rnd_us() { echo $(( (RANDOM * 32768 + RANDOM) % $1 )); }

# kills_wanted: true while this workload still wants kills (fewer than
# KILLS, and before SIMSYNC_KILL_UNTIL when set). Progress goes to stdout
# every 1,000 kills.
KILL_REPORTED=0
kills_wanted() {
    if [ $((KILLED / 1000)) -gt $KILL_REPORTED ]; then
        KILL_REPORTED=$((KILLED / 1000))
        echo "... $KILLED kills, $RUNS runs, ${SECONDS} s"
    fi
    [ "$KILLED" -lt "$KILLS" ] || return 1
    [ -z "$KILL_UNTIL" ] || [ "$EPOCHSECONDS" -lt "$KILL_UNTIL" ]
}

# kill_calibrate HOME: KILL_LO_US, the time simsync needs to start and
# open a node's store and SIM (the fastest of five `status` runs on
# HOME), below which a kill only stops a program that has not begun its
# workload yet.
KILL_LO_US=0
kill_calibrate() {
    local i t best=
    for i in 1 2 3 4 5; do
        "$KILLRUN" --time-file "$T/kr.time" 60000000 "$SIMSYNC" --home "$1" \
            --json status >/dev/null 2>&1 || fail "status on $1 for calibration"
        read -r t <"$T/kr.time"
        [ -n "$best" ] && [ "$best" -le "$t" ] || best=$t
    done
    KILL_LO_US=$best
}

# killed_run CMD...: run CMD and SIGKILL it at a random moment (killrun).
# Returns 0 when CMD completed (exit 0) first, 1 when the kill stopped it;
# any other outcome fails the test. "ss" runs simsync itself.
#
# The moment: one kill in eight is drawn anywhere in the program's start
# ([0, KILL_LO_US): exec, store open, what a resume redoes first); the
# others in [KILL_LO_US, KILL_HI_US), the workload itself. A run that
# completes without a kill before it (a whole workload, not the rest of
# one a kill cut) sets KILL_HI_US to a little over its duration, so kills
# land throughout a workload; five kills in a row double it (the runs take
# longer than the window; some must complete). Output of the last run:
# $T/kr.out, $T/kr.err.
KILL_HI_US=${KILL_HI_US:-200000}
KILL_STREAK=0
KILL_RESUMING=0
killed_run() {
    local d rc=0 dur
    [ "$1" = ss ] && { shift; set -- "$SIMSYNC" "$@"; }
    RUNS=$((RUNS + 1))
    [ $KILL_HI_US -gt $((KILL_LO_US + 1000)) ] || KILL_HI_US=$((KILL_LO_US + 1000))
    if [ $((RANDOM % 8)) = 0 ] && [ $KILL_LO_US -gt 0 ]; then
        d=$(( (RANDOM * 32768 + RANDOM) % KILL_LO_US ))
    else
        d=$(( KILL_LO_US + (RANDOM * 32768 + RANDOM) % (KILL_HI_US - KILL_LO_US) ))
    fi
    "$KILLRUN" --time-file "$T/kr.time" "$d" "$@" >"$T/kr.out" 2>"$T/kr.err" || rc=$?
    [ -z "${SIMSYNC_KILL_TRACE:-}" ] || { read -r dur <"$T/kr.time"; echo "d=$d lo=$KILL_LO_US hi=$KILL_HI_US rc=$rc dur=$dur" >&2; }
    case $rc in
    0)
        read -r dur <"$T/kr.time"
        [ $KILL_RESUMING = 1 ] || KILL_HI_US=$(( dur * 6 / 5 + 1000 ))
        KILL_STREAK=0
        KILL_RESUMING=0
        return 0 ;;
    137)
        KILLED=$((KILLED + 1))
        KILL_RESUMING=1
        [ "$d" -ge "$KILL_LO_US" ] || KILLED_EARLY=$((KILLED_EARLY + 1))
        KILL_STREAK=$((KILL_STREAK + 1))
        [ $KILL_STREAK -lt 5 ] || { KILL_HI_US=$((KILL_HI_US * 2)); KILL_STREAK=0; }
        return 1 ;;
    *) fail "after $KILLED kills, '$*' exited $rc: $(cat "$T/kr.out" "$T/kr.err")" ;;
    esac
}

# kill_summary: how the kills fell and how long the loop took, for the
# test's last line.
kill_summary() {
    echo "$RUNS runs, $KILLED_EARLY kills in the first ${KILL_LO_US} us of a run, ${SECONDS} s"
}

# tree_sums DIR: "digest  ./path" of every regular file below DIR
# (temporary files of interrupted writes excluded), sorted by path.
tree_sums() { "$TREESUM" "$1" || fail "treesum $1"; }

# files_known DIR SUMS: every file below DIR (temporaries excluded) has,
# at its path, one of the contents listed in SUMS (tree_sums lines):
# nothing half-written under an item's name. Prints the first files that
# are not on stderr.
files_known() { "$TREESUM" --known "$2" "$1"; }
