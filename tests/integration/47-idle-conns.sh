#!/usr/bin/env bash
# Exhaustion by connections (issue 6 item 8): 1,000 idle connections and a
# slow-loris client (one byte of a handshake every 0.3 s, never finishing)
# against a hub started with --idle-timeout 8. While all of them are open
# a terminal syncs (the hub still serves); then the hub closes every idle
# connection and the slow-loris one, which kept sending, because a
# connection must finish its handshake and first message within the idle
# timeout. Second part: a hub limited to 256 open files (ulimit -n) with
# 1,000 connections waiting still serves a sync (a connection that has not
# said anything gives up its place). A frame header claiming 4 GiB is
# refused before any allocation (the hub's peak RSS stays small).
. "$(dirname "$0")/lib.sh"

FLOOD_PID=
HUB2_PID=
stop_all() {
    [ -n "$FLOOD_PID" ] && kill "$FLOOD_PID" 2>/dev/null
    [ -n "$HUB2_PID" ] && kill "$HUB2_PID" 2>/dev/null && wait "$HUB2_PID" 2>/dev/null
    cleanup
}
trap stop_all EXIT

# A client process holding N idle connections and one slow-loris
# connection to HOST:PORT. It writes "$2.status" lines as it goes:
# "open I S" (I idle connections still open, S 1 while the slow one is),
# and "done CONNECTED IDLE_CLOSED SLOW_CLOSED SLOW_BYTES" when every
# connection was closed by the hub or after 300 s.
cat >"$T/flood.py" <<'PY'
import os, selectors, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
status, n = sys.argv[2], int(sys.argv[3])
def put(line):
    tmp = status + ".tmp"
    with open(tmp, "w") as f:
        f.write(line + "\n")
    os.replace(tmp, status)
sel = selectors.DefaultSelector()
idle = []
for _ in range(n):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect((host, int(port)))
    except OSError:
        s.close()
        continue
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, "idle")
    idle.append(s)
slow = socket.create_connection((host, int(port)), timeout=10)
slow.setblocking(False)
sel.register(slow, selectors.EVENT_READ, "slow")
# A handshake frame header announcing 64 bytes, then 63 of them, one
# every 0.3 s: 20 s of trickle that never completes the frame.
trickle = b"\x00\x00\x00\x40" + os.urandom(63)
sent, nxt = 0, time.monotonic()
open_idle, slow_open = len(idle), True
connected = len(idle)
deadline = time.monotonic() + 300
put("open %d 1" % open_idle)
while (open_idle > 0 or slow_open) and time.monotonic() < deadline:
    if slow_open and time.monotonic() >= nxt and sent < len(trickle):
        try:
            slow.send(trickle[sent:sent + 1])
            sent += 1
        except OSError:
            pass
        nxt = time.monotonic() + 0.3
    for key, _ in sel.select(timeout=0.1):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if data:
            continue
        sel.unregister(s)
        s.close()
        if key.data == "idle":
            open_idle -= 1
        else:
            slow_open = False
    put("open %d %d" % (open_idle, 1 if slow_open else 0))
put("done %d %d %d %d" % (connected, connected - open_idle,
                          0 if slow_open else 1, sent))
PY

# wait_status FILE PATTERN: wait (up to 5 minutes) until FILE matches.
wait_status() {
    for _ in $(seq 1 3000); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$1" >&2 2>/dev/null
    fail "no '$2' in $1"
}

ss --home "$T/hub" init --role hub >/dev/null || fail "hub init"
HUB_ID=$(ss --home "$T/hub" id)

# serve_hub LOG ARGS...: start a hub with extra serve arguments, wait for
# its address (HUB_ADDR); the pid is in $!.
serve_hub_log() {
    local log=$1; shift
    for _ in $(seq 1 100); do
        HUB_ADDR=$(sed -n 's/^hub: listening on //p' "$log" | head -n1)
        [ -n "$HUB_ADDR" ] && return 0
        sleep 0.05
    done
    cat "$log" >&2
    fail "hub did not start"
}

expect_exit 2 ss --home "$T/hub" hub serve --listen 127.0.0.1:0 \
    --idle-timeout 0
grep -q 'idle-timeout' "$T/last.err" || fail "no word on a bad --idle-timeout"
ok "a bad --idle-timeout is a usage error (exit 2)"

SIMSYNC_QUIET= "$SIMSYNC" --home "$T/hub" hub serve --listen 127.0.0.1:0 \
    --idle-timeout 8 2>"$T/hub.log" &
HUB_PID=$!
serve_hub_log "$T/hub.log"
grep -q 'idle timeout 8 s' "$T/hub.log" || fail "hub did not take the timeout"

new_sim card 440100000000047
new_terminal a
insert a card
register a
put a contacts alice.vcf "BEGIN:VCARD alice"
sync_ok a
ok "terminal registered and synced"

python3 "$T/flood.py" "$HUB_ADDR" "$T/flood1" 1000 &
FLOOD_PID=$!
wait_status "$T/flood1" '^open 1000 1$'
put a contacts bob.vcf "BEGIN:VCARD bob"
sync_ok a
# Closures only ever go down: if all 1,000 and the slow one are still open
# now, they were open during the whole sync.
wait_status "$T/flood1" '^(open|done) '
read -r what idle slow <"$T/flood1"
[ "$what" = open ] && [ "$idle" = 1000 ] && [ "$slow" = 1 ] \
    || fail "the connections closed before the sync ended: $what $idle $slow"
ok "a sync is served while 1,000 idle and one slow-loris connection are open"

wait_status "$T/flood1" '^done '
read -r _ connected closed slow_closed slow_bytes <"$T/flood1"
wait "$FLOOD_PID" 2>/dev/null; FLOOD_PID=
[ "$connected" = 1000 ] || fail "only $connected idle connections were made"
[ "$closed" = 1000 ] || fail "the hub closed $closed of 1000 idle connections"
[ "$slow_closed" = 1 ] || fail "the slow-loris connection was never closed"
[ "$slow_bytes" -lt 67 ] || fail "the slow-loris client sent its whole frame"
kill -0 "$HUB_PID" || fail "the hub died"
ok "the hub closed all 1,000 idle connections and the slow-loris one (after $slow_bytes bytes)"

put a contacts carol.vcf "BEGIN:VCARD carol"
sync_ok a
ok "the hub serves afterwards"

# A frame header claiming 4 GiB - 1 bytes, then a little data: the hub
# closes the connection without waiting for the body or allocating it.
python3 - "$HUB_ADDR" <<'PY' || fail "the 4 GiB claim was not refused"
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=60)
s.sendall(b"\xff\xff\xff\xff" + b"\0" * 1024)
s.settimeout(60)
try:
    while s.recv(4096):
        pass
except ConnectionResetError:
    pass
PY
hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$HUB_PID/status")
[ "$hwm" -lt 262144 ] || fail "the hub's peak memory is $hwm KiB"
sync_ok a
ok "a 4 GiB frame claim is refused at once (hub peak RSS $((hwm / 1024)) MiB)"
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null; HUB_PID=

# Part two: few descriptors. 1,000 connections wait (most of them in the
# kernel's backlog), the hub holds at most 256 - 64 of them.
( ulimit -n 256 && SIMSYNC_QUIET= exec "$SIMSYNC" --home "$T/hub" hub serve \
    --listen 127.0.0.1:0 --idle-timeout 60 ) 2>"$T/hub2.log" &
HUB2_PID=$!
serve_hub_log "$T/hub2.log"
grep -q 'up to 192 connections' "$T/hub2.log" \
    || { cat "$T/hub2.log" >&2; fail "the hub did not size itself to its files"; }
python3 "$T/flood.py" "$HUB_ADDR" "$T/flood2" 1000 &
FLOOD_PID=$!
wait_status "$T/flood2" '^open '
put a contacts dave.vcf "BEGIN:VCARD dave"
ss --home "$T/a" sync --hub "$HUB_ADDR" >"$T/sync.out" 2>&1 \
    || { cat "$T/sync.out" "$T/hub2.log" >&2; fail "sync against the full hub"; }
kill -0 "$HUB2_PID" || fail "the hub died when full"
ok "a hub out of places still serves a sync (a silent connection gives way)"
kill "$FLOOD_PID" 2>/dev/null; wait "$FLOOD_PID" 2>/dev/null; FLOOD_PID=
kill "$HUB2_PID"; wait "$HUB2_PID" 2>/dev/null; HUB2_PID=
grep -q 'connection failed' "$T/hub2.log" && {
    cat "$T/hub2.log" >&2; fail "the hub logged failures for idle peers"; }
ok "done"
