# simsync.sh -- helpers for guest tests that run simsync (sourced, not a
# test). Busybox sh: no bash. Every test runs in its own $TEST_DIR; $T is
# where nodes keep their homes.
set -u
T=${TEST_DIR:-/tmp/t}
mkdir -p "$T"
export SIMSYNC_QUIET=1
BG_PIDS=

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok - $*"; }
ss() { simsync "$@"; }

# bg PROGRAM ARGS...: run a program (not a shell function: kill would
# reach only the subshell) in the background; stop_bg ends it.
bg() { "$@" & BG_PIDS="$BG_PIDS $!"; LAST_BG=$!; }
stop_bg() {
    for p in $BG_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    BG_PIDS=
}

# expect_exit CODE CMD...: run CMD, require its exit code.
expect_exit() {
    want=$1; shift
    got=0
    "$@" >"$T/last.out" 2>"$T/last.err" || got=$?
    [ "$got" = "$want" ] || {
        cat "$T/last.out" "$T/last.err"
        fail "expected exit $want, got $got: $*"
    }
}

# wait_match SECONDS FILE SED-SCRIPT: poll FILE until the sed script
# prints something; print it.
wait_match() {
    n=$(($1 * 10))
    while [ $n -gt 0 ]; do
        out=$(sed -n "$3" "$2" 2>/dev/null | head -n1)
        [ -n "$out" ] && { echo "$out"; return 0; }
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# start_hub: a hub on the guest's 127.0.0.1; sets HUB_ADDR and HUB_ID.
start_hub() {
    ss --home "$T/hub" init --role hub >/dev/null || fail "hub init"
    HUB_ID=$(ss --home "$T/hub" id)
    SIMSYNC_QUIET= bg simsync --home "$T/hub" hub serve --listen 127.0.0.1:0 \
        2>"$T/hub.log"
    HUB_ADDR=$(wait_match 20 "$T/hub.log" 's/^hub: listening on //p') ||
        { cat "$T/hub.log"; fail "the hub did not start"; }
}

# new_sim NAME SUBSCRIBER: a virtual SIM $T/NAME.sim, PIN 1234.
new_sim() {
    ss sim create "$T/$1.sim" --subscriber "$2" --pin 1234 --puk 12345678 \
        >/dev/null || fail "sim create $1"
}

# terminal NAME SIM: init terminal NAME, insert SIM, register at the hub.
terminal() {
    ss --home "$T/$1" init --role terminal --terminal-id "imei-$1" \
        >/dev/null || fail "init $1"
    SIMSYNC_PIN=1234 ss --home "$T/$1" sim insert "$T/$2.sim" >/dev/null ||
        fail "sim insert into $1"
    SIMSYNC_PIN=1234 SIMSYNC_PASSWORD="pw-$1" SIMSYNC_RECOVERY=rec-secret \
        ss --home "$T/$1" register --hub "$HUB_ADDR" --hub-id "$HUB_ID" \
        >"$T/register-$1.out" 2>&1 ||
        { cat "$T/register-$1.out"; fail "register $1"; }
}

# put NAME CLASS FILE CONTENT
put() { mkdir -p "$T/$1/data/$2"; printf '%s\n' "$4" >"$T/$1/data/$2/$3"; }

# sync_ok NAME [ARGS...]: NAME syncs (with the hub, or --peer ...);
# its JSON report is in $T/sync.out.
sync_ok() {
    who=$1
    shift
    ss --home "$T/$who" --json sync "$@" >"$T/sync.out" 2>&1 ||
        { cat "$T/sync.out"; fail "$who: sync $*"; }
}

same_tree() {
    diff -r "$T/$1/data/$3" "$T/$2/data/$3" >"$T/diff.out" 2>&1 ||
        { cat "$T/diff.out"; fail "$1 and $2 differ in $3"; }
}

copies() { ls "$T/$1/data/$2" | grep -c '\.conflict-' || true; }
npeers() { ss --home "$T/$1" --json peers | grep -o '"terminal_id"' | wc -l; }

# pair_listen NAME ADDR: NAME waits for a pairing on ADDR (--yes) in the
# background; PAIR_PID is its process.
pair_listen() {
    ss --home "$T/$1" pair --listen "$2" --yes --timeout 60 \
        >"$T/pair-$1.out" 2>&1 &
    PAIR_PID=$!
    wait_match 20 "$T/pair-$1.out" '/^Waiting for the other node/p' \
        >/dev/null || { cat "$T/pair-$1.out"; fail "$1 did not listen"; }
}
# pair_end WANT: the listening side's exit code must be WANT.
pair_end() {
    got=0
    wait "$PAIR_PID" || got=$?
    [ "$got" = "$1" ] || { cat "$T"/pair-*.out; fail "pair --listen exited $got, not $1"; }
}
