# lib.sh -- helpers for integration tests: real simsync processes, a hub on
# 127.0.0.1, terminals in a temporary directory. Sourced by the tests.
set -u
SIMSYNC=${SIMSYNC:-$(cd "$(dirname "$0")/../.." && pwd)/build/simsync}
LINKSHIM=${LINKSHIM:-$(dirname "$SIMSYNC")/tests/tools/linkshim}
T=$(mktemp -d /tmp/simsync-it.XXXXXX)
HUB_PID=
export SIMSYNC_QUIET=1

# SIMSYNC_TEST_KEEP=1 keeps the temporary directory of a failed test (its
# homes, the hub's store and full log) and says where it is.
cleanup() {
    local rc=$?
    for p in ${SHIM_PIDS:-}; do kill "$p" 2>/dev/null; done
    [ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null && wait "$HUB_PID" 2>/dev/null
    if { [ "$rc" != 0 ] || [ -n "${TEST_FAILED:-}" ]; } &&
        [ -n "${SIMSYNC_TEST_KEEP:-}" ]; then
        echo "kept $T" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT

# fail MESSAGE: say why, with the end of the hub's log (a failure in a long
# run is often only understood from it), and stop.
fail() {
    TEST_FAILED=1
    echo "FAIL: $*" >&2
    if [ -s "$T/hub.log" ]; then
        echo "--- last lines of the hub's log:" >&2
        tail -n 15 "$T/hub.log" >&2
    fi
    exit 1
}
ok() { echo "ok - $*"; }

# ss ARGS...: run simsync, output to stdout/stderr.
ss() { "$SIMSYNC" "$@"; }

# expect_exit CODE CMD...: run CMD, require its exit code.
expect_exit() {
    local want=$1; shift
    local got=0
    "$@" >"$T/last.out" 2>"$T/last.err" || got=$?
    [ "$got" = "$want" ] || {
        cat "$T/last.out" "$T/last.err" >&2
        fail "expected exit $want, got $got: $*"
    }
}

# start_hub: init and serve a hub on a free port; sets HUB_ADDR, HUB_ID.
start_hub() {
    ss --home "$T/hub" init --role hub >/dev/null || fail "hub init"
    HUB_ID=$(ss --home "$T/hub" id)
    SIMSYNC_QUIET= "$SIMSYNC" --home "$T/hub" hub serve --listen 127.0.0.1:0 \
        2>"$T/hub.log" &
    HUB_PID=$!
    for _ in $(seq 1 100); do
        HUB_ADDR=$(sed -n 's/^hub: listening on //p' "$T/hub.log" | head -n1)
        [ -n "$HUB_ADDR" ] && return 0
        sleep 0.05
    done
    cat "$T/hub.log" >&2
    fail "hub did not start"
}

# new_sim NAME SUBSCRIBER: a virtual SIM file $T/NAME.sim with PIN 1234.
new_sim() {
    ss sim create "$T/$1.sim" --subscriber "$2" --pin 1234 --puk 12345678 \
        >/dev/null || fail "sim create $1"
}

# new_terminal NAME: init a terminal home $T/NAME.
new_terminal() {
    ss --home "$T/$1" init --role terminal --terminal-id "imei-$1" >/dev/null \
        || fail "init $1"
}

# insert NAME SIM: put SIM into terminal NAME (PIN 1234).
insert() {
    SIMSYNC_PIN=1234 ss --home "$T/$1" sim insert "$T/$2.sim" >/dev/null \
        || fail "sim insert $2 into $1"
}

# register NAME [ARGS]: register terminal NAME with the hub at $HUB_ADDR
# (recovery "rec-secret"; HUB_ADDR=... register NAME goes elsewhere, e.g.
# through a shim).
register() {
    SIMSYNC_PIN=1234 SIMSYNC_PASSWORD="pw-$1" SIMSYNC_RECOVERY=rec-secret \
        ss --home "$T/$1" register --hub "$HUB_ADDR" --hub-id "$HUB_ID" \
        "${@:2}" >/dev/null || fail "register $1"
}

sync_ok() { ss --home "$T/$1" sync "${@:2}" >"$T/sync.out" 2>&1 \
    || { cat "$T/sync.out" >&2; fail "sync $1"; }; }

# put NAME CLASS FILE CONTENT
put() { mkdir -p "$T/$1/data/$2"; printf '%s\n' "$4" >"$T/$1/data/$2/$3"; }

# same_tree A B CLASS: the class folders of two terminals are identical.
same_tree() {
    diff -r "$T/$1/data/$3" "$T/$2/data/$3" >/dev/null \
        || { diff -r "$T/$1/data/$3" "$T/$2/data/$3" >&2; \
             fail "$1 and $2 differ in $3"; }
}

# start_shim NAME ARGS...: a linkshim in front of the hub (ARGS: --rate,
# --cut-after, ...); sets SHIM_ADDR and SHIM_PID_NAME.
SHIM_PIDS=
start_shim() {
    local name=$1; shift
    "$LINKSHIM" --listen 127.0.0.1:0 --to "$HUB_ADDR" --port-file "$T/$name.port" \
        "$@" 2>"$T/$name.log" &
    SHIM_PIDS="$SHIM_PIDS $!"
    for _ in $(seq 1 100); do
        [ -s "$T/$name.port" ] && { SHIM_ADDR=127.0.0.1:$(cat "$T/$name.port"); return 0; }
        sleep 0.05
    done
    cat "$T/$name.log" >&2
    fail "linkshim $name did not start"
}
stop_shims() { for p in $SHIM_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; SHIM_PIDS=; }

# wait_match SECONDS FILE SED-SCRIPT: print the first line the sed script
# prints from FILE, waiting up to SECONDS for one; returns 1 if none came.
wait_match() {
    local tries=$(($1 * 20)) out
    for _ in $(seq 1 "$tries"); do
        out=$(sed -n "$3" "$2" 2>/dev/null | head -n1)
        [ -n "$out" ] && { echo "$out"; return 0; }
        sleep 0.05
    done
    return 1
}
