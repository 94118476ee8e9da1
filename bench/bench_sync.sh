#!/usr/bin/env bash
# bench_sync.sh -- end-to-end sync benchmark with real simsync processes.
#
# One terminal holds a phone's worth of data (contacts, calendar events and
# incompressible photos); a hub runs on 127.0.0.1. The script measures the
# initial sync, a sync after editing one contact, and an idle sync, and
# prints a Markdown table: items sent, wall time, bytes on the wire after
# the handshake, handshake bytes, and the peak RSS of the terminal process
# and of the hub during that sync. It also times the scan of an unchanged
# tree on its own (a sync against a closed port stops right after the scan).
#
# Usage: bench/bench_sync.sh [SIMSYNC_BINARY]   (or set $SIMSYNC)
# Environment:
#   BENCH_SCALE  scales the item counts (default 1: 10000 contacts, 2000
#                events, 200 photos of 2 MiB); 0.1 gives a quick run.
#   BENCH_REPS   repetitions of the idle and one-contact syncs and of the
#                scan timing; the table shows medians (default 5).
#   TMPDIR       where the temporary tree goes (mktemp -d).
#
# Needs bash, python3 and the simsync binary. Peak RSS of the terminal comes
# from getrusage(RUSAGE_CHILDREN) of a small python wrapper; the hub's peak
# is its VmHWM, reset before each measured sync through
# /proc/PID/clear_refs (value 5) so each row shows that sync's own peak.
set -euo pipefail

SIMSYNC=${1:-${SIMSYNC:-}}
if [ -z "$SIMSYNC" ]; then
    echo "usage: $0 SIMSYNC_BINARY (or set SIMSYNC)" >&2
    exit 2
fi
SIMSYNC=$(cd "$(dirname "$SIMSYNC")" && pwd)/$(basename "$SIMSYNC")
[ -x "$SIMSYNC" ] || { echo "not executable: $SIMSYNC" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 2; }

SCALE=${BENCH_SCALE:-1}
REPS=${BENCH_REPS:-5}
T=$(mktemp -d "${TMPDIR:-/tmp}/simsync-bench.XXXXXX")
HUB_PID=
export SIMSYNC_QUIET=1

cleanup() {
    if [ -n "$HUB_PID" ]; then
        kill "$HUB_PID" 2>/dev/null || true
        wait "$HUB_PID" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

# ------------------------------------------------------------ helpers

# measure.py OUT CMD...: run CMD with stdout to OUT.json and stderr to
# OUT.err; write OUT.meas as "wall_seconds peak_rss_kib exit_code".
cat >"$T/measure.py" <<'EOF'
import resource, subprocess, sys, time
out = sys.argv[1]
with open(out + ".json", "wb") as o, open(out + ".err", "wb") as e:
    t0 = time.monotonic_ns()
    rc = subprocess.call(sys.argv[2:], stdout=o, stderr=e)
    wall = (time.monotonic_ns() - t0) / 1e9
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(out + ".meas", "w") as m:
    m.write("%.6f %d %d\n" % (wall, rss, rc))
EOF

hub_reset_peak() {
    # Reset the hub's VmHWM; fails silently on kernels without it, and
    # then the hub column shows the running peak instead.
    echo 5 >"/proc/$HUB_PID/clear_refs" 2>/dev/null || true
}

hub_peak_kib() {
    sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$HUB_PID/status"
}

# run_measured LABEL EXPECTED_RC ARGS...: one measured simsync run on the
# terminal; records $T/res/LABEL.{json,err,meas,hub}.
run_measured() {
    local label=$1 want=$2 rc
    shift 2
    hub_reset_peak
    python3 "$T/measure.py" "$T/res/$label" "$SIMSYNC" --home "$T/term" "$@"
    hub_peak_kib >"$T/res/$label.hub"
    rc=$(cut -d' ' -f3 "$T/res/$label.meas")
    if [ "$rc" != "$want" ]; then
        cat "$T/res/$label.json" "$T/res/$label.err" >&2
        die "$label: simsync exited $rc, expected $want"
    fi
}

# ------------------------------------------------------------ data

mkdir -p "$T/res"
note "generating data (scale $SCALE) in $T"
python3 - "$T/term/data" "$SCALE" <<'EOF'
import os, random, sys
root, scale = sys.argv[1], float(sys.argv[2])
n_contacts = max(1, round(10000 * scale))
n_events = max(1, round(2000 * scale))
n_photos = max(1, round(200 * scale))
rnd = random.Random(20240611)
first = ["Ana", "Ben", "Chloe", "Dmitri", "Eun-ji", "Farah", "Goran",
         "Hana", "Ivo", "Jun", "Kofi", "Lea", "Mateo", "Nadia", "Omar"]
last = ["Abe", "Berg", "Costa", "Diallo", "Eriksen", "Fujita", "Garcia",
        "Horvat", "Ito", "Jensen", "Kowalski", "Lopez", "Moreau", "Novak"]
os.makedirs(os.path.join(root, "contacts"))
for i in range(n_contacts):
    f, l = rnd.choice(first), rnd.choice(last)
    card = ("BEGIN:VCARD\r\nVERSION:3.0\r\n"
            "UID:urn:uuid:%08x-0000-4000-8000-%012x\r\n"
            "FN:%s %s %05d\r\nN:%s;%s;;;\r\n"
            "TEL;TYPE=CELL:+44 7700 %06d\r\n"
            "EMAIL:%s.%s.%05d@example.org\r\n"
            "END:VCARD\r\n") % (i, rnd.getrandbits(48), f, l, i, l, f,
                                 rnd.randrange(10**6), f.lower(),
                                 l.lower(), i)
    with open(os.path.join(root, "contacts", "c%05d.vcf" % i), "w") as o:
        o.write(card)
os.makedirs(os.path.join(root, "pim"))
for i in range(n_events):
    day = 1 + i % 28
    ev = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n"
          "BEGIN:VEVENT\r\nUID:ev-%05d@example.org\r\n"
          "DTSTART:2024%02d%02dT%02d0000Z\r\nDTEND:2024%02d%02dT%02d3000Z\r\n"
          "SUMMARY:Meeting %05d with %s\r\nLOCATION:Room %d\r\n"
          "END:VEVENT\r\nEND:VCALENDAR\r\n") % (
              i, 1 + i % 12, day, 8 + i % 10, 1 + i % 12, day, 8 + i % 10,
              i, rnd.choice(first), rnd.randrange(1, 500))
    with open(os.path.join(root, "pim", "e%05d.ics" % i), "w") as o:
        o.write(ev)
os.makedirs(os.path.join(root, "archive"))
for i in range(n_photos):
    with open(os.path.join(root, "archive", "IMG_%04d.jpg" % i), "wb") as o:
        o.write(rnd.randbytes(2 * 1024 * 1024))
print(n_contacts, n_events, n_photos, file=sys.stderr)
EOF
N_CONTACTS=$(find "$T/term/data/contacts" -type f | wc -l)
N_TOTAL=$(find "$T/term/data" -type f | wc -l)
DATA_BYTES=$(du -sb "$T/term/data" | cut -f1)

# ------------------------------------------------------------ hub, terminal

"$SIMSYNC" --home "$T/hub" init --role hub >/dev/null || die "hub init"
HUB_ID=$("$SIMSYNC" --home "$T/hub" id)
SIMSYNC_QUIET='' "$SIMSYNC" --home "$T/hub" hub serve --listen 127.0.0.1:0 \
    2>"$T/hub.log" &
HUB_PID=$!
HUB_ADDR=
for _ in $(seq 1 200); do
    HUB_ADDR=$(sed -n 's/^hub: listening on //p' "$T/hub.log" | head -n1)
    [ -n "$HUB_ADDR" ] && break
    kill -0 "$HUB_PID" 2>/dev/null || break
    sleep 0.05
done
[ -n "$HUB_ADDR" ] || { cat "$T/hub.log" >&2; die "hub did not start"; }
note "hub $HUB_ID listening on $HUB_ADDR (pid $HUB_PID)"

"$SIMSYNC" sim create "$T/bench.sim" --subscriber 440109876543210 \
    --pin 1234 --puk 12345678 >/dev/null || die "sim create"
# init keeps an existing data folder: the files are already there.
"$SIMSYNC" --home "$T/term" init --role terminal --terminal-id imei-bench \
    >/dev/null || die "terminal init"
SIMSYNC_PIN=1234 "$SIMSYNC" --home "$T/term" sim insert "$T/bench.sim" \
    >/dev/null || die "sim insert"
SIMSYNC_PIN=1234 SIMSYNC_PASSWORD=bench-password \
    SIMSYNC_RECOVERY=bench-recovery \
    "$SIMSYNC" --home "$T/term" register --hub "$HUB_ADDR" --hub-id "$HUB_ID" \
    >/dev/null || die "register"

# ------------------------------------------------------------ measurements

note "initial sync of $N_TOTAL files ($DATA_BYTES bytes)"
run_measured initial 0 --json sync

note "idle syncs ($REPS)"
for i in $(seq 1 "$REPS"); do run_measured "idle$i" 0 --json sync; done

# Scan of the unchanged tree: a sync whose hub address is a port nobody
# listens on scans, then fails to connect (exit 4). A port we bound and
# closed again is free; the baseline is 'simsync id' (start + node open).
CLOSED=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
note "scan of the unchanged tree ($REPS)"
for i in $(seq 1 "$REPS"); do
    run_measured "scan$i" 4 sync --hub "127.0.0.1:$CLOSED"
    run_measured "base$i" 0 id
done

note "one-contact syncs ($REPS)"
for i in $(seq 1 "$REPS"); do
    f=$(printf '%s/term/data/contacts/c%05d.vcf' "$T" \
        $(( (i * 7919) % N_CONTACTS )))
    sed -i "s/^TEL;TYPE=CELL:.*/TEL;TYPE=CELL:+44 7700 9000$i\r/" "$f"
    run_measured "one$i" 0 --json sync
done

kill "$HUB_PID" 2>/dev/null || true
wait "$HUB_PID" 2>/dev/null || true
HUB_PID=

# ------------------------------------------------------------ report

python3 - "$T/res" "$REPS" "$N_TOTAL" "$DATA_BYTES" <<'EOF'
import json, statistics, sys
res, reps, n_total, data_bytes = sys.argv[1], int(sys.argv[2]), \
    int(sys.argv[3]), int(sys.argv[4])

def load(label):
    wall, rss, rc = open("%s/%s.meas" % (res, label)).read().split()
    r = {"wall": float(wall), "rss": int(rss),
         "hub": int(open("%s/%s.hub" % (res, label)).read().strip() or 0)}
    try:
        r.update(json.load(open("%s/%s.json" % (res, label))))
    except ValueError:
        pass
    r["wire"] = r.get("wire_sent", 0) + r.get("wire_recv", 0)
    return r

def med(rows, key):
    return statistics.median(r[key] for r in rows)

def fmt_time(s):
    if s >= 1:
        return "%.2f s" % s
    return "%.0f ms" % (s * 1000) if s >= 0.01 else "%.1f ms" % (s * 1000)

def fmt_bytes(b):
    b = float(b)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return ("%d %s" % (b, unit)) if unit == "B" else \
                "%.1f %s" % (b, unit)
        b /= 1024

def fmt_kib(k):
    return "%.1f MiB" % (k / 1024)

rows = [("initial sync", [load("initial")]),
        ("one-contact sync", [load("one%d" % i) for i in range(1, reps + 1)]),
        ("idle sync", [load("idle%d" % i) for i in range(1, reps + 1)])]
print("| sync | items | wall time | wire bytes after handshake "
      "| handshake bytes | terminal peak RSS | hub peak RSS |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, rs in rows:
    print("| %s | %d | %s | %s (%d) | %d | %s | %s |" % (
        name, med(rs, "sent_items") + med(rs, "recv_items"),
        fmt_time(med(rs, "wall")), fmt_bytes(med(rs, "wire")),
        med(rs, "wire"), med(rs, "handshake_bytes"),
        fmt_kib(med(rs, "rss")), fmt_kib(med(rs, "hub"))))
print()
print("Medians over %d runs for the one-contact and idle rows. items = "
      "items sent + received; %d files, %s of data." %
      (reps, n_total, fmt_bytes(data_bytes)))
print()
print("| run | scanned | sent items | sent bytes | wire sent | wire recv "
      "| library seconds | wall |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name, rs in rows:
    for i, r in enumerate(rs):
        print("| %s %d | %d | %d | %d | %d | %d | %.3f | %.1f ms |" % (
            name, i + 1, r.get("scanned", 0), r.get("sent_items", 0),
            r.get("sent_bytes", 0), r.get("wire_sent", 0),
            r.get("wire_recv", 0), r.get("seconds", 0), r["wall"] * 1000))
scan = [load("scan%d" % i) for i in range(1, reps + 1)]
base = [load("base%d" % i) for i in range(1, reps + 1)]
print()
print("Scan of the unchanged tree (%d files; a sync that stops at a closed "
      "port): median %s wall, min %s; process start + node open "
      "('simsync id'): median %s; scan alone about %s. Terminal peak RSS "
      "during the scan: %s." % (
          n_total, fmt_time(med(scan, "wall")),
          fmt_time(min(r["wall"] for r in scan)), fmt_time(med(base, "wall")),
          fmt_time(med(scan, "wall") - med(base, "wall")),
          fmt_kib(med(scan, "rss"))))
one, idle = rows[1][1], rows[2][1]
d = med(one, "wire") - med(idle, "wire")
print()
print("One-contact sync minus idle sync: %+d wire bytes, %+.1f ms wall." %
      (d, (med(one, "wall") - med(idle, "wall")) * 1000))
ok_b = med(one, "wire") < 4096
ok_t = med(one, "wall") < 0.050
print("Targets for the one-contact sync: wire after handshake < 4 KiB: "
      "%s; wall < 50 ms: %s." % ("met" if ok_b else "MISSED",
                                 "met" if ok_t else "MISSED"))
EOF
