#!/usr/bin/env bash
# linkshim_selftest.sh -- check that linkshim relays bytes unchanged and that
# each fault it injects (cut, rate, fragment, delay) does what it says.
#
# Usage: linkshim_selftest.sh PATH/TO/linkshim
# Needs python3 (the echo/sink/source servers and the clients). Set
# LINKSHIM_WRAP to run linkshim under a wrapper, for example
#   LINKSHIM_WRAP="valgrind -q --leak-check=full --error-exitcode=99"
# (a wrapper's non-zero exit fails the test like linkshim's own would).
# shellcheck disable=SC2015  # in `A && B || fail`, fail is meant for either
set -euo pipefail

SHIM=${1:?usage: linkshim_selftest.sh PATH/TO/linkshim}
[ -x "$SHIM" ] || { echo "FAIL: $SHIM is not an executable" >&2; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 is needed" >&2; exit 1; }
read -r -a WRAP <<<"${LINKSHIM_WRAP:-}"

T=$(mktemp -d /tmp/linkshim-test.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# The peers: servers (echo, sink, source) and clients (send, echo, recv).
# A server writes its port to a file; each connection appends one line
# "BYTES_RECEIVED eof|reset" to the server's result file when it ends.
cat >"$T/peer.py" <<'EOF'
import hashlib, os, socket, sys, threading, time

def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)

lock = threading.Lock()

def record(result, line):
    with lock:
        with open(result, "a") as f:
            f.write(line + "\n")

def handle(conn, mode, result, source):
    got, how, sha = 0, "eof", hashlib.sha256()
    try:
        if mode == "source":
            with open(source, "rb") as f:
                conn.sendall(f.read())
            conn.shutdown(socket.SHUT_WR)
        while True:
            data = conn.recv(65536)
            if not data:
                break
            got += len(data)
            if mode == "echo":
                conn.sendall(data)
            elif mode == "sink":
                sha.update(data)
        if mode == "echo":
            conn.shutdown(socket.SHUT_WR)
        elif mode == "sink":
            conn.sendall(("%d %s\n" % (got, sha.hexdigest())).encode())
    except OSError:
        how = "reset"
    finally:
        conn.close()
        record(result, "%d %s" % (got, how))

def serve(mode, port_file, result, source=None):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    write_atomic(port_file, "%d\n" % ls.getsockname()[1])
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=handle, args=(conn, mode, result, source),
                         daemon=True).start()

def connect(port):
    return socket.create_connection(("127.0.0.1", int(port)))

def read_all(conn, sha):
    got, how = 0, "eof"
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            got += len(data)
            sha.update(data)
    except ConnectionResetError:
        how = "reset"
    return got, how

# send PORT FILE: send FILE, half-close, print the sink's reply and the
# seconds it took, or "reset".
def client_send(port, path):
    t0 = time.monotonic()
    conn = connect(port)
    try:
        with open(path, "rb") as f:
            conn.sendall(f.read())
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            data = conn.recv(4096)
            if not data:
                break
            reply += data
        print(reply.decode().strip(), "%.3f" % (time.monotonic() - t0))
    except OSError:  # reset, broken pipe, or not connected after a reset
        print("reset")
    conn.close()

# echo PORT FILE: send FILE while reading the echo; print the bytes, sha256
# and end of what came back, and the seconds it took.
def client_echo(port, path):
    t0 = time.monotonic()
    conn = connect(port)
    def pump():
        try:
            with open(path, "rb") as f:
                conn.sendall(f.read())
            conn.shutdown(socket.SHUT_WR)
        except (ConnectionResetError, BrokenPipeError, OSError):
            pass
    th = threading.Thread(target=pump)
    th.start()
    sha = hashlib.sha256()
    got, how = read_all(conn, sha)
    th.join()
    conn.close()
    print(got, sha.hexdigest(), how, "%.3f" % (time.monotonic() - t0))

# recv PORT: read until the end; print bytes, sha256 and how it ended.
def client_recv(port):
    conn = connect(port)
    sha = hashlib.sha256()
    got, how = read_all(conn, sha)
    conn.close()
    print(got, sha.hexdigest(), how)

cmd = sys.argv[1]
if cmd == "serve":
    serve(*sys.argv[2:])
elif cmd == "send":
    client_send(*sys.argv[2:])
elif cmd == "echo":
    client_echo(*sys.argv[2:])
elif cmd == "recv":
    client_recv(*sys.argv[2:])
else:
    sys.exit("unknown command " + cmd)
EOF

# wait_file FILE: wait up to 10 s for FILE to exist and be non-empty.
wait_file() {
    local i
    for i in $(seq 1 200); do
        [ -s "$1" ] && return 0
        sleep 0.05
    done
    fail "$1 did not appear"
}

# start_server MODE [SOURCE_FILE]: sets SRV_PORT and SRV_RES (result file).
NSRV=0
start_server() {
    NSRV=$((NSRV + 1))
    SRV_RES="$T/srv$NSRV.res"
    python3 "$T/peer.py" serve "$1" "$T/srv$NSRV.port" "$SRV_RES" "${2:-}" &
    PIDS+=($!)
    wait_file "$T/srv$NSRV.port"
    SRV_PORT=$(cat "$T/srv$NSRV.port")
}

# start_shim ARGS...: linkshim in front of $SRV_PORT; sets SHIM_PORT,
# SHIM_PID, SHIM_LOG (its --log) and SHIM_ERR (its stderr).
NSHIM=0
start_shim() {
    NSHIM=$((NSHIM + 1))
    SHIM_LOG="$T/shim$NSHIM.log"
    SHIM_ERR="$T/shim$NSHIM.err"
    "${WRAP[@]}" "$SHIM" --listen 127.0.0.1:0 --to "127.0.0.1:$SRV_PORT" \
        --port-file "$T/shim$NSHIM.port" --log "$SHIM_LOG" "$@" \
        2>"$SHIM_ERR" &
    SHIM_PID=$!
    PIDS+=("$SHIM_PID")
    wait_file "$T/shim$NSHIM.port"
    SHIM_PORT=$(cat "$T/shim$NSHIM.port")
    grep -q "^linkshim: listening on 127.0.0.1:$SHIM_PORT\$" "$SHIM_ERR" \
        || fail "no 'listening on' line: $(cat "$SHIM_ERR")"
}

# stop_shim: SIGTERM must end linkshim with status 0.
stop_shim() {
    local rc=0
    kill -TERM "$SHIM_PID"
    wait "$SHIM_PID" || rc=$?
    [ "$rc" = 0 ] || {
        cat "$SHIM_ERR" >&2
        fail "linkshim exited $rc on SIGTERM"
    }
}

# result_line N: the Nth line of the server's result file (waits for it).
result_line() {
    local i
    for i in $(seq 1 200); do
        if [ "$(wc -l <"$SRV_RES" 2>/dev/null || echo 0)" -ge "$1" ]; then
            sed -n "${1}p" "$SRV_RES"
            return 0
        fi
        sleep 0.05
    done
    fail "server recorded no connection $1"
}

# log_line N: linkshim's log line for connection N (waits for it).
log_line() {
    local i
    for i in $(seq 1 200); do
        if grep -q "^conn $1 " "$SHIM_LOG" 2>/dev/null; then
            grep "^conn $1 " "$SHIM_LOG"
            return 0
        fi
        sleep 0.05
    done
    fail "linkshim logged no connection $1"
}

# gt A B: A > B for decimal numbers.
gt() {
    python3 -c 'import sys; a, b = map(float, sys.argv[1:]); sys.exit(a <= b)' \
        "$1" "$2"
}

peer() { python3 "$T/peer.py" "$@"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

head -c $((5 * 1024 * 1024)) /dev/urandom >"$T/5m"
head -c $((1024 * 1024)) /dev/urandom >"$T/1m"
head -c $((256 * 1024)) /dev/urandom >"$T/256k"
head -c $((100 * 1024)) /dev/urandom >"$T/100k"
printf 'ping\n' >"$T/ping"

# --- arguments ----------------------------------------------------------
"$SHIM" --help >"$T/help" || fail "--help exited $?"
grep -q -- "--cut-after BYTES" "$T/help" || fail "--help lacks --cut-after"
for bad in "" "--listen 127.0.0.1:0" "--to 127.0.0.1:1" \
    "--listen 127.0.0.1:0 --to 127.0.0.1:1 --rate x" \
    "--listen 127.0.0.1:0 --to 127.0.0.1:1 --rate 0" \
    "--listen 127.0.0.1:0 --to 127.0.0.1:1 --fragment 0" \
    "--listen 127.0.0.1:0 --to 127.0.0.1:1 --cut-dir left --cut-after 1" \
    "--listen 127.0.0.1:0 --to 127.0.0.1:1 --cut-all" \
    "--listen 127.0.0.1 --to 127.0.0.1:1" "--listen 127.0.0.1:0 --to h:70000" \
    "--listen 127.0.0.1:0 --to 127.0.0.1:1 --bogus"; do
    rc=0
    # shellcheck disable=SC2086  # word splitting wanted
    "$SHIM" $bad >/dev/null 2>"$T/bad.err" || rc=$?
    [ "$rc" = 2 ] || fail "'$bad' exited $rc, want 2"
    [ -s "$T/bad.err" ] || fail "'$bad' said nothing on stderr"
done
ok "--help exits 0; bad arguments exit 2 with a message"

# --- pass-through -------------------------------------------------------
start_server echo
start_shim
read -r got hash how _ < <(peer echo "$SHIM_PORT" "$T/5m")
[ "$got" = 5242880 ] && [ "$hash" = "$(sha "$T/5m")" ] && [ "$how" = eof ] \
    || fail "echo of 5 MB: $got bytes, $hash, $how"
[ "$(log_line 1)" = "conn 1 up 5242880 down 5242880 cut no" ] \
    || fail "log: $(log_line 1)"
stop_shim
ok "5 MB up and back unchanged (sha256 $hash); log line right"

start_server sink
start_shim
read -r got hash secs < <(peer send "$SHIM_PORT" "$T/5m")
[ "$got" = 5242880 ] && [ "$hash" = "$(sha "$T/5m")" ] \
    || fail "sink of 5 MB: $got $hash"
stop_shim
ok "5 MB to a sink, then a half-close and a reply back ($secs s)"

# --- many connections at once -------------------------------------------
start_server echo
start_shim
for i in $(seq 1 20); do
    peer echo "$SHIM_PORT" "$T/256k" >"$T/many$i.out" &
    PIDS+=($!)
    pids_many[i]=$!
done
for i in $(seq 1 20); do
    wait "${pids_many[i]}" || fail "client $i failed"
    read -r got hash how _ <"$T/many$i.out"
    [ "$got" = 262144 ] && [ "$hash" = "$(sha "$T/256k")" ] \
        || fail "client $i: $got bytes, $hash, $how"
done
stop_shim
ok "20 clients at once, 256 KiB each way, all unchanged"

# --- cut ----------------------------------------------------------------
start_server sink
start_shim --cut-after 1000 --cut-dir up
reply=$(peer send "$SHIM_PORT" "$T/100k")
[ "$reply" = reset ] || fail "client not reset: $reply"
[ "$(result_line 1)" = "1000 reset" ] || fail "server got: $(result_line 1)"
[ "$(log_line 1)" = "conn 1 up 1000 down 0 cut yes" ] \
    || fail "log: $(log_line 1)"
read -r got hash _ < <(peer send "$SHIM_PORT" "$T/100k")
[ "$got" = 102400 ] && [ "$hash" = "$(sha "$T/100k")" ] \
    || fail "second connection: $got $hash"
[ "$(log_line 2)" = "conn 2 up 102400 down 72 cut no" ] \
    || fail "log: $(log_line 2)"
stop_shim
ok "--cut-after 1000 --cut-dir up: server got exactly 1000 bytes, then RST;" \
    "the second connection is not cut"

start_server source "$T/100k"
start_shim --cut-after 1000 --cut-dir down --cut-all
for n in 1 2; do
    read -r got hash how < <(peer recv "$SHIM_PORT")
    [ "$got" = 1000 ] && [ "$how" = reset ] \
        || fail "connection $n: client got $got bytes, $how"
    [ "$hash" = "$(head -c 1000 "$T/100k" | sha256sum | cut -d' ' -f1)" ] \
        || fail "connection $n: the 1000 bytes differ"
    [ "$(log_line $n)" = "conn $n up 0 down 1000 cut yes" ] \
        || fail "log: $(log_line $n)"
done
stop_shim
ok "--cut-after 1000 --cut-dir down --cut-all: both clients got exactly the" \
    "first 1000 bytes, then RST"

start_server echo
start_shim --cut-after 1000 --delay-ms 0
read -r got _ how _ < <(peer echo "$SHIM_PORT" "$T/100k")
read -r _ _ _ up _ down _ cut < <(log_line 1)
[ $((up + down)) = 1000 ] && [ "$cut" = yes ] \
    || fail "both: up $up + down $down, cut $cut"
[ "$got" = "$down" ] && [ "$how" = reset ] \
    || fail "both: client got $got of $down, $how"
stop_shim
ok "--cut-after 1000 (both): up $up + down $down = 1000, all of it delivered"

# --- rate ---------------------------------------------------------------
start_server sink
start_shim --rate 500000
read -r got hash secs < <(peer send "$SHIM_PORT" "$T/1m")
[ "$got" = 1048576 ] && [ "$hash" = "$(sha "$T/1m")" ] \
    || fail "rate: $got $hash"
gt "$secs" 1.2 || fail "--rate 500000: 1 MiB took only $secs s"
stop_shim
ok "--rate 500000: 1 MiB took $secs s (expected about 2.1)"

start_server sink
start_shim --rate 1000000000
read -r got hash secs < <(peer send "$SHIM_PORT" "$T/5m")
[ "$got" = 5242880 ] && [ "$hash" = "$(sha "$T/5m")" ] \
    || fail "rate 1e9: $got $hash"
stop_shim
ok "--rate 1000000000: 5 MB unchanged in $secs s"

# --- fragment -----------------------------------------------------------
start_server echo
start_shim --fragment 1
read -r got hash how secs < <(peer echo "$SHIM_PORT" "$T/256k")
[ "$got" = 262144 ] && [ "$hash" = "$(sha "$T/256k")" ] \
    || fail "fragment 1: $got $hash $how"
stop_shim
ok "--fragment 1: 256 KiB up and back unchanged ($secs s)"

start_server sink
start_shim --fragment 7 --rate 200000
read -r got hash secs < <(peer send "$SHIM_PORT" "$T/100k")
[ "$got" = 102400 ] && [ "$hash" = "$(sha "$T/100k")" ] \
    || fail "fragment 7 + rate: $got $hash"
stop_shim
ok "--fragment 7 --rate 200000: 100 KiB unchanged ($secs s)"

# --- delay --------------------------------------------------------------
start_server echo
start_shim --delay-ms 200
read -r got hash how secs < <(peer echo "$SHIM_PORT" "$T/ping")
[ "$got" = 5 ] || fail "delay: $got bytes"
gt "$secs" 0.39 || fail "--delay-ms 200: a round trip took only $secs s"
read -r got hash how secs2 < <(peer echo "$SHIM_PORT" "$T/1m")
[ "$got" = 1048576 ] && [ "$hash" = "$(sha "$T/1m")" ] \
    || fail "delay 1 MiB: $got $hash"
stop_shim
ok "--delay-ms 200: a round trip took $secs s; 1 MiB unchanged ($secs2 s)"

# --- once ---------------------------------------------------------------
start_server sink
start_shim --once
read -r got _ _ < <(peer send "$SHIM_PORT" "$T/100k")
[ "$got" = 102400 ] || fail "once: $got"
rc=0
for _ in $(seq 1 100); do
    kill -0 "$SHIM_PID" 2>/dev/null || break
    sleep 0.05
done
wait "$SHIM_PID" || rc=$?
[ "$rc" = 0 ] || fail "--once exited $rc"
ok "--once: exit 0 after the first connection"

# --- a server that is not there --------------------------------------------
SRV_PORT=1
start_shim
reply=$(peer send "$SHIM_PORT" "$T/ping")
[ "$reply" = reset ] || fail "no server: client got '$reply'"
[ "$(log_line 1)" = "conn 1 up 0 down 0 cut no" ] || fail "log: $(log_line 1)"
grep -q "cannot connect to 127.0.0.1:1" "$SHIM_ERR" || fail "$(cat "$SHIM_ERR")"
stop_shim
ok "server down: the client is reset and the reason is on stderr"

echo "all linkshim checks passed"
