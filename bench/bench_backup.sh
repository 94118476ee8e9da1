#!/usr/bin/env bash
# bench_backup.sh -- backup and restore benchmark: simsync against restic
# and borg on the same generated terminal, on the same machine, in one run.
#
# The script generates about BENCH_BACKUP_MB MiB of one terminal's data
# (contacts, mail, photos, apps) from a fixed seed, then for each tool:
#   1. the initial backup of the whole tree,
#   2. a restore of that backup into an empty place (for simsync: a freshly
#      registered second terminal that uses the recovery secret), checked
#      byte for byte against the source,
# then applies "a day of changes" to the tree (contacts edited, added and
# deleted, new mail, new photos, two app updates) and measures
#   3. the incremental backup of every tool,
#   4. (unless BENCH_BACKUP_VERIFY_LATEST=0) a restore of the incremental
#      backup, also checked byte for byte.
# It prints Markdown tables: wall time, MiB/s of the data size, CPU time,
# the size of the repository (for simsync: the hub's home) after the step,
# its growth, the peak RSS of the tool's process and, for simsync, of the
# hub process during the step.
#
# Usage: bench/bench_backup.sh [SIMSYNC_BINARY]   (or set $SIMSYNC;
#        default: build/simsync of this repository)
# Environment:
#   BENCH_BACKUP_MB      size of the generated data in MiB (default 1024;
#                        64 gives a quick run). Item counts scale with it.
#   BENCH_BACKUP_SEED    seed of the generator (default 20261121).
#   BENCH_BACKUP_VERIFY_LATEST  1 (default) also restores and checks the
#                        incremental backup of every tool; 0 skips it.
#   BENCH_BACKUP_TOOLS   tools to run, default "simsync restic borg".
#   TMPDIR               where the temporary tree goes (mktemp -d).
#
# Needs bash, python3, sha256sum, GNU time (/usr/bin/time), restic and borg
# (Debian 12: apt-get install -y restic borgbackup time). The data stays in
# the page cache (it was just written and the machine has the memory), so
# every tool reads it warm; page caches are not dropped.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "$0")/.." && pwd)
SIMSYNC=${1:-${SIMSYNC:-$REPO_DIR/build/simsync}}
SIZE_MB=${BENCH_BACKUP_MB:-1024}
SEED=${BENCH_BACKUP_SEED:-20261121}
VERIFY_LATEST=${BENCH_BACKUP_VERIFY_LATEST:-1}
TOOLS=${BENCH_BACKUP_TOOLS:-simsync restic borg}

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

# ------------------------------------------------------------ checks

if [ ! -f "$SIMSYNC" ] || [ ! -x "$SIMSYNC" ]; then
    die "no simsync program at $SIMSYNC: build it first, or pass the" \
        "binary as the first argument"
fi
SIMSYNC=$(cd "$(dirname "$SIMSYNC")" && pwd)/$(basename "$SIMSYNC")
case "$SIZE_MB" in
'' | *[!0-9]*) die "BENCH_BACKUP_MB must be a whole number of MiB" ;;
esac
[ "$SIZE_MB" -ge 16 ] || die "BENCH_BACKUP_MB must be at least 16"
missing=
for cmd in python3 sha256sum restic borg; do
    command -v "$cmd" >/dev/null || missing="$missing $cmd"
done
[ -x /usr/bin/time ] || missing="$missing /usr/bin/time"
if [ -n "$missing" ]; then
    echo "bench: missing:$missing" >&2
    echo "bench: on Debian 12 install them with:" >&2
    echo "    sudo apt-get install -y restic borgbackup time python3" >&2
    exit 2
fi
RESTIC_VERSION=$(restic version | head -n1)
BORG_VERSION=$(borg --version | head -n1)
case "$RESTIC_VERSION" in
"restic 0.14."*) ;;
*) note "warning: the comparison is meant for restic 0.14, found:" \
    "$RESTIC_VERSION" ;;
esac
case "$BORG_VERSION" in
"borg 1.2."*) ;;
*) note "warning: the comparison is meant for borg 1.2, found:" \
    "$BORG_VERSION" ;;
esac

T=$(mktemp -d "${TMPDIR:-/tmp}/simsync-bench-backup.XXXXXX")
HUB_PID=
export SIMSYNC_QUIET=1
# Keep the other tools' caches and keys inside the temporary tree.
export RESTIC_PASSWORD=bench-restic-password
export RESTIC_CACHE_DIR=$T/restic-cache
export BORG_PASSPHRASE=bench-borg-passphrase
export BORG_BASE_DIR=$T/borg-base
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

cleanup() {
    if [ -n "$HUB_PID" ]; then
        kill "$HUB_PID" 2>/dev/null || true
        wait "$HUB_PID" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT

DATA=$T/data    # the terminal's tree; every tool backs up this folder
RES=$T/res      # one file set per measured step
mkdir -p "$RES"

# ------------------------------------------------------------ helpers

# disk_bytes DIR: bytes the folder takes on disk (allocated blocks, so a
# sparse LMDB map counts only its written pages).
disk_bytes() { du -s --block-size=1 "$1" | cut -f1; }

# tree_sums DIR OUT: "sha256  ./relative/path" of every file, sorted.
tree_sums() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z |
        xargs -0 -r sha256sum) >"$2"
}

# same_tree LABEL DIR SUMS: DIR holds exactly the files listed in SUMS,
# with the same contents; otherwise fail loudly.
same_tree() {
    local label=$1 dir=$2 sums=$3
    tree_sums "$dir" "$RES/$label.sums"
    if ! cmp -s "$sums" "$RES/$label.sums"; then
        echo "bench: $label: the restored tree differs from the source:" >&2
        diff "$sums" "$RES/$label.sums" | head -n 20 >&2
        die "$label: restore is not byte-identical (see above)"
    fi
    note "$label: restored tree is byte-identical" \
        "($(wc -l <"$sums") files)"
}

hub_reset_peak() {
    [ -n "$HUB_PID" ] || return 0
    # Value 5 resets VmHWM; without it the hub column is the running peak.
    echo 5 >"/proc/$HUB_PID/clear_refs" 2>/dev/null || true
}

hub_peak_kib() {
    [ -n "$HUB_PID" ] || { echo 0; return 0; }
    sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$HUB_PID/status"
}

# The hub's anonymous resident memory now (its VmHWM also counts the pages
# of its LMDB map that it read, which are page cache, not heap).
hub_anon_kib() {
    [ -n "$HUB_PID" ] || { echo 0; return 0; }
    sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$HUB_PID/status"
}

# The hub's CPU time so far (user + system, clock ticks, all threads).
hub_ticks() {
    [ -n "$HUB_PID" ] || { echo 0; return 0; }
    # Fields after the ")" that ends the command name: utime is the 12th.
    sed 's/^.*) //' "/proc/$HUB_PID/stat" | awk '{ print $12 + $13 }'
}

# measure TOOL STEP REPO_DIR CACHE_DIR CMD...: run CMD (stdout to
# $RES/TOOL-STEP.out, stderr to .err) under GNU time and record
# "wall_ms peak_rss_kib user_s sys_s repo_bytes cache_bytes hub_peak_kib
# hub_cpu_ticks hub_anon_kib" in $RES/TOOL-STEP.meas. Fails loudly when
# CMD fails.
measure() {
    local tool=$1 step=$2 repo=$3 cache=$4 f t0 t1 h0 rc=0 cb=0
    shift 4
    f=$RES/$tool-$step
    hub_reset_peak
    h0=$(hub_ticks)
    t0=$(date +%s%N)
    /usr/bin/time -f '%M %U %S' -o "$f.time" "$@" >"$f.out" 2>"$f.err" ||
        rc=$?
    t1=$(date +%s%N)
    if [ "$rc" != 0 ]; then
        tail -n 20 "$f.out" "$f.err" >&2
        die "$tool $step failed (exit $rc): $*"
    fi
    [ -d "$cache" ] && cb=$(disk_bytes "$cache")
    echo "$(( (t1 - t0) / 1000000 )) $(tail -n1 "$f.time")" \
        "$(disk_bytes "$repo") $cb $(hub_peak_kib)" \
        "$(( $(hub_ticks) - h0 )) $(hub_anon_kib)" >"$f.meas"
    note "$tool $step: $(( (t1 - t0) / 1000000 )) ms"
}

# ------------------------------------------------------------ data

note "generating $SIZE_MB MiB of terminal data (seed $SEED) in $T"
cat >"$T/gen.py" <<'EOF'
# gen.py ROOT SIZE_MB SEED init|day: the initial tree, or a day of changes
# applied to it. Deterministic for a given seed and size. Prints one line
# of "key=value" facts about what it wrote.
import base64, os, random, sys

root, size_mb, seed, what = sys.argv[1], int(sys.argv[2]), \
    int(sys.argv[3]), sys.argv[4]
f = size_mb / 1024.0                  # scale against the 1 GiB terminal
MiB = 1 << 20
rnd = random.Random(seed if what == "init" else seed + 1)

FIRST = ["Ana", "Ben", "Chloe", "Dmitri", "Eun-ji", "Farah", "Goran",
         "Hana", "Ivo", "Jun", "Kofi", "Lea", "Mateo", "Nadia", "Omar",
         "Pia", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor"]
LAST = ["Abe", "Berg", "Costa", "Diallo", "Eriksen", "Fujita", "Garcia",
        "Horvat", "Ito", "Jensen", "Kowalski", "Lopez", "Moreau", "Novak",
        "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka"]
# A fixed vocabulary of made-up words gives mail text that compresses
# like prose (roughly 3:1), without shipping a corpus.
vrnd = random.Random(7)
WORDS = ["".join(vrnd.choice("etaoinshrdlcumwfgypbvkjxqz"[:12 + i % 14])
                 for _ in range(2 + vrnd.randrange(9)))
         for i in range(3000)]
# Token mix for the low-entropy part of apps: 16 symbols per byte.
LOW16 = bytes((0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff,
               0x48, 0x89, 0xe5, 0x8b, 0x45, 0xc3) * 16)

def write(rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as o:
        o.write(data)
    return len(data)

def vcard(i, version=0):
    fn, ln = rnd.choice(FIRST), rnd.choice(LAST)
    lines = ["BEGIN:VCARD", "VERSION:3.0",
             "UID:urn:uuid:%08x-0000-4000-8000-%012x" % (i, rnd.getrandbits(48)),
             "FN:%s %s" % (fn, ln), "N:%s;%s;;;" % (ln, fn),
             "TEL;TYPE=CELL:+44 7700 %06d" % rnd.randrange(10 ** 6),
             "EMAIL:%s.%s.%05d@example.org" % (fn.lower(), ln.lower(), i)]
    if rnd.random() < 0.4:
        lines.append("ADR;TYPE=HOME:;;%d %s Street;%s;;%05d;UK" % (
            rnd.randrange(1, 300), rnd.choice(LAST), rnd.choice(LAST),
            rnd.randrange(10 ** 5)))
    if version or rnd.random() < 0.3:
        lines.append("NOTE:" + " ".join(rnd.choices(WORDS, k=8 + version)))
    lines.append("END:VCARD")
    return ("\r\n".join(lines) + "\r\n").encode()

def mail(i):
    """A message: headers, prose, sometimes a base64 attachment."""
    words = int(rnd.lognormvariate(6.6, 0.9))        # median ~700 words
    words = max(30, min(words, 20000))
    body = []
    left = words
    while left > 0:
        n = min(left, 8 + rnd.randrange(40))
        body.append(" ".join(rnd.choices(WORDS, k=n)) + ".")
        left -= n
    text = "\n\n".join(body)
    att = b""
    if rnd.random() < 0.05:                          # 5% carry a file
        blob = rnd.randbytes(rnd.randrange(40, 400) * 1024)
        att = (b"\n--b1\nContent-Type: application/octet-stream\n"
               b"Content-Transfer-Encoding: base64\n\n" +
               base64.encodebytes(blob) + b"--b1--\n")
    head = ("From: %s %s <%s@example.org>\nTo: owner@example.org\n"
            "Subject: %s\nDate: Sat, %02d Nov 2026 %02d:%02d:00 +0000\n"
            "Message-ID: <%d.%d@example.org>\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=b1\n\n--b1\n"
            "Content-Type: text/plain; charset=utf-8\n\n") % (
                rnd.choice(FIRST), rnd.choice(LAST), rnd.choice(WORDS),
                " ".join(rnd.choices(WORDS, k=5)), 1 + i % 28, i % 24,
                i % 60, i, rnd.getrandbits(32))
    return head.encode() + text.encode() + b"\n" + att

def photo():
    return rnd.randbytes(rnd.randrange(2 * MiB, 6 * MiB))

def app_block(pool):
    """64 KiB of an app: native code (random), resources (low entropy)
    or tables and strings (repeated fragments)."""
    k = rnd.random()
    if k < 0.4:
        return rnd.randbytes(65536)
    if k < 0.75:
        return rnd.randbytes(65536).translate(LOW16)
    return b"".join(rnd.choices(pool, k=64))

def app(size):
    pool = [rnd.randbytes(1024) for _ in range(48)]
    return b"".join(app_block(pool) for _ in range(size // 65536 + 1))[:size]

def init():
    n_contacts = max(20, round(10000 * f))
    total = 0
    for i in range(n_contacts):
        total += write("contacts/c%05d.vcf" % i, vcard(i))
    n_mail, budget = 0, int(0.12 * size_mb * MiB)
    while budget > 0:
        n = write("mail/INBOX/m%06d.eml" % n_mail, mail(n_mail))
        budget -= n
        total += n
        n_mail += 1
    n_apps, budget = 0, int(0.20 * size_mb * MiB)
    while budget > 0:
        size = min(budget, rnd.randrange(4 * MiB, 40 * MiB))
        size = max(size, MiB)
        n = write("apps/app%03d.apk" % n_apps, app(size))
        budget -= n
        total += n
        n_apps += 1
    n_photos, budget = 0, size_mb * MiB - total
    while budget > 0:
        n = write("archive/DCIM/IMG_%05d.jpg" % n_photos, photo())
        budget -= n
        total += n
        n_photos += 1
    print("files=%d bytes=%d contacts=%d mail=%d apps=%d photos=%d" % (
        n_contacts + n_mail + n_apps + n_photos, total, n_contacts, n_mail,
        n_apps, n_photos))

def listing(cls):
    out = []
    for d, _, files in os.walk(os.path.join(root, cls)):
        out += [os.path.relpath(os.path.join(d, x), root) for x in files]
    return sorted(out)

def day():
    """New content bytes: whole new files, whole edited small files, and
    the rewritten or appended parts of the edited apps."""
    def n(x):
        return max(1, round(x * f))
    added = edited = deleted = new_bytes = touched = 0
    contacts = listing("contacts")
    ne = min(n(150), len(contacts) // 2)
    for rel in rnd.sample(contacts, ne):
        i = int(rel[-9:-4])
        b = write(rel, vcard(i, version=1))
        edited += 1; new_bytes += b; touched += b
    start = len(contacts) + 100000
    for i in range(start, start + n(50)):
        b = write("contacts/c%06d.vcf" % i, vcard(i))
        added += 1; new_bytes += b; touched += b
    for rel in rnd.sample(contacts, min(n(5), len(contacts) // 4)):
        if os.path.exists(os.path.join(root, rel)):
            os.unlink(os.path.join(root, rel)); deleted += 1
    mails = listing("mail")
    for rel in rnd.sample(mails, min(n(10), len(mails) // 4)):
        os.unlink(os.path.join(root, rel)); deleted += 1
    for i in range(len(mails) + 100000, len(mails) + 100000 + n(100)):
        b = write("mail/INBOX/m%06d.eml" % i, mail(i))
        added += 1; new_bytes += b; touched += b
    photos = listing("archive")
    for rel in rnd.sample(photos, min(2, len(photos) // 4)):
        os.unlink(os.path.join(root, rel)); deleted += 1
    for i in range(100000, 100000 + n(10)):
        b = write("archive/DCIM/IMG_%06d.jpg" % i, photo())
        added += 1; new_bytes += b; touched += b
    # An app update: three 256 KiB regions rewritten, 1 MiB appended.
    apps = listing("apps")
    for rel in rnd.sample(apps, min(2, len(apps))):
        path = os.path.join(root, rel)
        size = os.path.getsize(path)
        with open(path, "r+b") as o:
            for _ in range(3):
                off = rnd.randrange(0, max(1, size - 262144))
                o.seek(off)
                o.write(rnd.randbytes(min(262144, size)))
                new_bytes += min(262144, size)
            o.seek(0, os.SEEK_END)
            o.write(rnd.randbytes(MiB))
            new_bytes += MiB
        edited += 1
        touched += os.path.getsize(path)
    print("added=%d edited=%d deleted=%d new_bytes=%d touched_bytes=%d" % (
        added, edited, deleted, new_bytes, touched))

init() if what == "init" else day()
EOF
python3 "$T/gen.py" "$DATA" "$SIZE_MB" "$SEED" init >"$RES/data.facts" ||
    die "data generation failed"
DATA_BYTES=$(du -sb "$DATA" | cut -f1)
DATA_FILES=$(find "$DATA" -type f | wc -l)
tree_sums "$DATA" "$RES/src1.sums"
note "data: $(cat "$RES/data.facts")"

# ------------------------------------------------------------ simsync

hub_start() {
    "$SIMSYNC" --home "$T/hub" init --role hub >/dev/null || die "hub init"
    HUB_ID=$("$SIMSYNC" --home "$T/hub" id)
    SIMSYNC_QUIET='' "$SIMSYNC" --home "$T/hub" hub serve \
        --listen 127.0.0.1:0 2>"$T/hub.log" &
    HUB_PID=$!
    HUB_ADDR=
    for _ in $(seq 1 200); do
        HUB_ADDR=$(sed -n 's/^hub: listening on //p' "$T/hub.log" | head -n1)
        [ -n "$HUB_ADDR" ] && break
        kill -0 "$HUB_PID" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$HUB_ADDR" ] || { cat "$T/hub.log" >&2; die "hub did not start"; }
    note "simsync hub listening on $HUB_ADDR (pid $HUB_PID)"
}

hub_stop() {
    [ -n "$HUB_PID" ] || return 0
    kill -0 "$HUB_PID" 2>/dev/null || die "the simsync hub died; its log:" \
        "$(tail -n 5 "$T/hub.log")"
    kill "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
    HUB_PID=
}

# terminal NAME [--data DIR]: init, insert the SIM, register (the first
# one creates the data key; later ones need the recovery secret).
terminal() {
    local name=$1
    shift
    "$SIMSYNC" --home "$T/$name" init --role terminal \
        --terminal-id "imei-$name" "$@" >/dev/null || die "init $name"
    SIMSYNC_PIN=1234 "$SIMSYNC" --home "$T/$name" sim insert "$T/bench.sim" \
        >/dev/null || die "sim insert $name"
    SIMSYNC_PIN=1234 SIMSYNC_PASSWORD="pw-$name" \
        SIMSYNC_RECOVERY=bench-recovery-secret \
        "$SIMSYNC" --home "$T/$name" register --hub "$HUB_ADDR" \
        --hub-id "$HUB_ID" >/dev/null || die "register $name"
}

simsync_initial() {
    hub_start
    "$SIMSYNC" sim create "$T/bench.sim" --subscriber 440109876543210 \
        --pin 1234 --puk 12345678 >/dev/null || die "sim create"
    terminal t1 --data "$DATA"
    measure simsync backup "$T/hub" "$T/t1" \
        "$SIMSYNC" --home "$T/t1" --json backup now
    terminal t2
    measure simsync restore "$T/hub" "$T/t2" \
        "$SIMSYNC" --home "$T/t2" restore 1 --on-conflict overwrite
    same_tree simsync-restore "$T/t2/data" "$RES/src1.sums"
}

simsync_incremental() {
    measure simsync incremental "$T/hub" "$T/t1" \
        "$SIMSYNC" --home "$T/t1" --json backup now
    if [ "$VERIFY_LATEST" = 1 ]; then
        terminal t3
        measure simsync restore2 "$T/hub" "$T/t3" \
            "$SIMSYNC" --home "$T/t3" restore 2 --on-conflict overwrite
        same_tree simsync-restore2 "$T/t3/data" "$RES/src2.sums"
    fi
    "$SIMSYNC" --home "$T/hub" --json hub stats >"$RES/hub-stats.json" ||
        true
    hub_stop
}

# ------------------------------------------------------------ restic

# The backup runs in the data folder on ".", so a restore to an empty
# target recreates the tree at the target's top.
restic_initial() {
    restic -r "$T/restic" init >/dev/null || die "restic init"
    measure restic backup "$T/restic" "$RESTIC_CACHE_DIR" \
        sh -c 'cd "$1" && exec restic -r "$2" backup --host bench .' \
        sh "$DATA" "$T/restic"
    mkdir "$T/restic-out1"
    measure restic restore "$T/restic" "$RESTIC_CACHE_DIR" \
        restic -r "$T/restic" restore latest --target "$T/restic-out1"
    same_tree restic-restore "$T/restic-out1" "$RES/src1.sums"
}

restic_incremental() {
    measure restic incremental "$T/restic" "$RESTIC_CACHE_DIR" \
        sh -c 'cd "$1" && exec restic -r "$2" backup --host bench .' \
        sh "$DATA" "$T/restic"
    if [ "$VERIFY_LATEST" = 1 ]; then
        mkdir "$T/restic-out2"
        measure restic restore2 "$T/restic" "$RESTIC_CACHE_DIR" \
            restic -r "$T/restic" restore latest --target "$T/restic-out2"
        same_tree restic-restore2 "$T/restic-out2" "$RES/src2.sums"
    fi
}

# ------------------------------------------------------------ borg

borg_initial() {
    borg init --encryption repokey "$T/borg" >/dev/null 2>&1 ||
        die "borg init"
    measure borg backup "$T/borg" "$BORG_BASE_DIR" \
        sh -c 'cd "$1" && exec borg create "$2::gen1" .' \
        sh "$DATA" "$T/borg"
    mkdir "$T/borg-out1"
    measure borg restore "$T/borg" "$BORG_BASE_DIR" \
        sh -c 'cd "$1" && exec borg extract "$2::gen1"' \
        sh "$T/borg-out1" "$T/borg"
    same_tree borg-restore "$T/borg-out1" "$RES/src1.sums"
}

borg_incremental() {
    measure borg incremental "$T/borg" "$BORG_BASE_DIR" \
        sh -c 'cd "$1" && exec borg create "$2::gen2" .' \
        sh "$DATA" "$T/borg"
    if [ "$VERIFY_LATEST" = 1 ]; then
        mkdir "$T/borg-out2"
        measure borg restore2 "$T/borg" "$BORG_BASE_DIR" \
            sh -c 'cd "$1" && exec borg extract "$2::gen2"' \
            sh "$T/borg-out2" "$T/borg"
        same_tree borg-restore2 "$T/borg-out2" "$RES/src2.sums"
    fi
}

# ------------------------------------------------------------ the run

for tool in $TOOLS; do
    case "$tool" in
    simsync | restic | borg) ;;
    *) die "unknown tool in BENCH_BACKUP_TOOLS: $tool" ;;
    esac
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for tool in $TOOLS; do
    note "$tool: initial backup and restore"
    "${tool}_initial"
done
note "applying a day of changes"
python3 "$T/gen.py" "$DATA" "$SIZE_MB" "$SEED" day >"$RES/day.facts" ||
    die "the day of changes failed"
note "day: $(cat "$RES/day.facts")"
DATA2_BYTES=$(du -sb "$DATA" | cut -f1)
tree_sums "$DATA" "$RES/src2.sums"
for tool in $TOOLS; do
    note "$tool: incremental backup"
    "${tool}_incremental"
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------ report

python3 - "$RES" "$DATA_BYTES" "$DATA2_BYTES" "$DATA_FILES" "$TOOLS" \
    "$RESTIC_VERSION" "$BORG_VERSION" "$(getconf CLK_TCK)" \
    "$LOAD_BEFORE" "$LOAD_AFTER" "$(nproc)" <<'EOF'
import json, os, sys
res, data1, data2, nfiles = sys.argv[1], int(sys.argv[2]), \
    int(sys.argv[3]), int(sys.argv[4])
tools, rv, bv, hz = sys.argv[5].split(), sys.argv[6], sys.argv[7], \
    int(sys.argv[8])
load0, load1, ncpu = sys.argv[9], sys.argv[10], sys.argv[11]

def facts(name):
    return dict(kv.split("=") for kv in
                open(os.path.join(res, name)).read().split())

def load(tool, step):
    p = os.path.join(res, "%s-%s.meas" % (tool, step))
    if not os.path.exists(p):
        return None
    ms, rss, user, sys_, repo, cache, hub, hcpu, hanon = \
        open(p).read().split()
    return {"wall": int(ms) / 1000.0, "rss": int(rss),
            "cpu": float(user) + float(sys_), "repo": int(repo),
            "cache": int(cache), "hub": int(hub),
            "hub_cpu": int(hcpu) / float(hz), "hub_anon": int(hanon)}

def mib(b):
    return "%.1f MiB" % (b / 1048576.0)

def t(s):
    return "%.2f s" % s if s < 100 else "%.0f s" % s

d, day = facts("data.facts"), facts("day.facts")
steps = [("backup", "initial backup", data1),
         ("restore", "restore (initial)", data1),
         ("incremental", "incremental backup", data2),
         ("restore2", "restore (after the day)", data2)]
print("| tool | step | wall | MiB/s | CPU user+sys | stored after "
      "| stored growth | peak RSS | hub peak RSS | hub CPU |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
rows = {}
for tool in tools:
    prev = 0
    for step, label, size in steps:
        r = load(tool, step)
        if r is None:
            continue
        rows[(tool, step)] = r
        backup = step in ("backup", "incremental")
        grow = r["repo"] - prev
        hub = tool == "simsync"
        print("| %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %s |" % (
            tool, label, t(r["wall"]), size / 1048576.0 / r["wall"],
            t(r["cpu"]), mib(r["repo"]) if backup else "",
            ("+" + mib(grow)) if backup else "", mib(r["rss"] * 1024),
            mib(r["hub"] * 1024) if hub else "-",
            t(r["hub_cpu"]) if hub else "-"))
        prev = r["repo"]
print()
print("Data: %d files, %s (%s contacts, %s mails, %s apps, %s photos); "
      "the data is in the page cache (warm) for every tool." % (
          nfiles, mib(data1), d["contacts"], d["mail"], d["apps"],
          d["photos"]))
print("A day of changes: %s files added, %s edited, %s deleted; %s of new "
      "content (new files, edited contacts, rewritten and appended parts "
      "of 2 apps), %s in the touched files; the tree is then %s." % (
          day["added"], day["edited"], day["deleted"],
          mib(int(day["new_bytes"])), mib(int(day["touched_bytes"])),
          mib(data2)))
print("MiB/s is the data size (the whole tree) over the wall time, also "
      "for the incremental backup. stored = disk usage of the repository "
      "(simsync: the hub's home). peak RSS = the tool's process "
      "(simsync: the terminal); hub peak RSS = the hub's VmHWM during the "
      "step; hub CPU = the hub's user+sys time during the step (restic "
      "and borg have no server process).")
if ("simsync", "restore") in rows:
    print("The hub's VmHWM counts the pages of its LMDB map it touched "
          "(page cache); its anonymous memory at the end of each step: " +
          ", ".join("%s %s" % (step, mib(rows[("simsync", step)]["hub_anon"]
                                         * 1024))
                    for step, _, _ in steps if ("simsync", step) in rows) +
          ".")
print()
print("Local state after the run (not part of the stored bytes): " + "; ".join(
    "%s %s" % (tool, mib(rows[(tool, "incremental")]["cache"]))
    for tool in tools if (tool, "incremental") in rows) +
    " (simsync: the terminal's home; restic: its cache; borg: its cache "
    "and keys).")
try:
    with open(os.path.join(res, "simsync-backup.out")) as a, \
            open(os.path.join(res, "simsync-incremental.out")) as b:
        j1, j2 = json.load(a), json.load(b)
    print("simsync reports: initial generation %d items, %s of chunks "
          "sent, manifest %s; incremental %d items, %s of chunks sent, "
          "manifest %s." % (
              j1["items"], mib(j1["chunk_bytes_sent"]),
              mib(j1["manifest_bytes"]), j2["items"],
              mib(j2["chunk_bytes_sent"]), mib(j2["manifest_bytes"])))
except (OSError, ValueError, KeyError):
    pass

def verdict(ok):
    return "met" if ok else "MISSED"

others = [x for x in tools if x != "simsync"]
if "simsync" in tools and others:
    print()
    for step, label in (("backup", "initial backup"),
                        ("restore", "restore")):
        s = rows[("simsync", step)]["wall"]
        best = min(rows[(x, step)]["wall"] for x in others)
        print("Target: %s faster than %s: %s (simsync %s, fastest other "
              "%s)." % (label, " and ".join(others), verdict(s < best),
                        t(s), t(best)))
if "simsync" in tools:
    new = int(day["new_bytes"])
    g = rows[("simsync", "incremental")]["repo"] - \
        rows[("simsync", "backup")]["repo"]
    w = rows[("simsync", "incremental")]["wall"]
    w0 = rows[("simsync", "backup")]["wall"]
    print("Target: incremental backup proportional to the changes: the hub "
          "grew by %s for %s of new content (%.2fx); the incremental took "
          "%.1f%% of the initial backup's time for changes that are %.1f%% "
          "of the data. Stored growth within 2x the new content: %s." % (
              mib(g), mib(new), g / float(new), 100.0 * w / w0,
              100.0 * new / data2, verdict(g <= 2 * new)))
print()
print("restic: %s; borg: %s. Load average (1, 5, 15 min) before the "
      "measurements: %s, after: %s, on %s CPUs: other work on the machine "
      "shows up as noise in every column." % (rv, bv, load0, load1, ncpu))
EOF
