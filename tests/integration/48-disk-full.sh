#!/usr/bin/env bash
# Exhaustion of disk space (issue 6 item 8), on a small tmpfs mounted here
# (root needed; skipped otherwise). First the hub's home sits on it: an
# upload and a backup that do not fit fail with a one-line error naming
# the lack of space and exit 1, the hub keeps serving, nothing half made
# shows (no partial generation, the other terminal gets only whole
# files), and once space is freed the same sync and backup complete. Then
# a terminal's home sits on it: a download that does not fit fails the
# same way, leaves only whole files, and completes after space is freed.
. "$(dirname "$0")/lib.sh"

SMALL=$T/small
mkdir -p "$SMALL"
if ! mount -t tmpfs -o size=40m tmpfs "$SMALL" 2>/dev/null; then
    echo "skip: mounting a tmpfs needs root"
    exit 0
fi
unmount_small() {
    [ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null && wait "$HUB_PID" 2>/dev/null
    HUB_PID=
    umount "$SMALL" 2>/dev/null || umount -l "$SMALL" 2>/dev/null
    cleanup
}
trap unmount_small EXIT
fail() { echo "FAIL: $*" >&2; tail -n 5 "$T/hub.log" >&2; exit 1; }

# fill_leaving KIB: a ballast file takes all of the tmpfs but KIB KiB.
fill_leaving() {
    rm -f "$SMALL/ballast"
    dd if=/dev/zero of="$SMALL/ballast" bs=1M 2>/dev/null
    local free_kib
    free_kib=$(df -k --output=avail "$SMALL" | tail -n1 | tr -d ' ')
    truncate -s -$(( $1 - free_kib ))K "$SMALL/ballast"
}
free_space() { rm -f "$SMALL/ballast"; }

# whole_files A B CLASS: every file B has in CLASS is byte for byte A's,
# and no temporary file is left in B's folder.
whole_files() {
    local f rel n=0
    while IFS= read -r f; do
        rel=${f#"$T/$2/data/$3/"}
        cmp -s "$f" "$T/$1/data/$3/$rel" || fail "$2 holds a damaged $3/$rel"
        n=$((n + 1))
    done < <(find "$T/$2/data/$3" -type f 2>/dev/null)
    echo "$n"
}

# The hub, with its home on the tmpfs.
HUBH=$SMALL/hub
ss --home "$HUBH" init --role hub >/dev/null || fail "hub init"
HUB_ID=$(ss --home "$HUBH" id)
SIMSYNC_QUIET= "$SIMSYNC" --home "$HUBH" hub serve --listen 127.0.0.1:0 \
    2>"$T/hub.log" &
HUB_PID=$!
for _ in $(seq 1 100); do
    HUB_ADDR=$(sed -n 's/^hub: listening on //p' "$T/hub.log" | head -n1)
    [ -n "$HUB_ADDR" ] && break
    sleep 0.05
done
[ -n "$HUB_ADDR" ] || fail "hub did not start"

new_sim card 440100000000048
new_terminal a; insert a card; register a
new_terminal b; insert b card; register b
put a contacts alice.vcf "BEGIN:VCARD alice"
sync_ok a
ok "hub on a 40 MiB tmpfs; first sync"

# 12 MiB of new photos into 4 MiB of room.
mkdir -p "$T/a/data/archive"
for i in $(seq 1 12); do
    head -c 1048576 /dev/urandom >"$T/a/data/archive/p$i.jpg"
done
fill_leaving 4096
expect_exit 1 ss --home "$T/a" sync
grep -qi 'space' "$T/last.err" || fail "no word on space: $(cat "$T/last.err")"
[ "$(wc -l <"$T/last.err")" = 1 ] || fail "more than one line: $(cat "$T/last.err")"
kill -0 "$HUB_PID" || fail "the hub died on a full disk"
ok "an upload into a full hub fails: exit 1, $(cat "$T/last.err")"

# What the hub committed is whole: b gets whole files only.
ss --home "$T/b" sync >"$T/b.out" 2>&1 || fail "b sync during the shortage: $(cat "$T/b.out")"
n=$(whole_files a b archive)
same_tree a b contacts
ok "b syncs from the full hub: contacts whole, $n of 12 photos, each whole"

expect_exit 1 ss --home "$T/a" backup now
grep -qi 'space' "$T/last.err" || fail "no word on space: $(cat "$T/last.err")"
ss --home "$T/a" --json backup list >"$T/list.json" || fail "backup list"
grep -q '"generation":' "$T/list.json" && fail "a partial generation is listed: $(cat "$T/list.json")"
ok "a backup into a full hub fails (exit 1) and lists no generation"

free_space
sync_ok a
sync_ok b
same_tree a b archive
same_tree a b contacts
out=$(ss --home "$T/a" --json backup now) || fail "backup after freeing space: $out"
ss --home "$T/a" --json backup list >"$T/list.json" || fail "backup list"
[ "$(grep -o '"generation":' "$T/list.json" | wc -l)" = 1 ] \
    || fail "list after the backup: $(cat "$T/list.json")"
new_terminal r; insert r card; register r
ss --home "$T/r" restore 1 >"$T/restore.out" 2>&1 || fail "restore: $(cat "$T/restore.out")"
same_tree a r archive
ok "after space is freed: sync, backup and restore complete, identical trees"

# The terminal side: c's home on the tmpfs, a download that does not fit.
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null; HUB_PID=
mv "$HUBH" "$T/hub2"
HUBH=$T/hub2
SIMSYNC_QUIET= "$SIMSYNC" --home "$HUBH" hub serve --listen "$HUB_ADDR" \
    2>"$T/hub.log" &
HUB_PID=$!
for _ in $(seq 1 100); do
    grep -q 'listening on' "$T/hub.log" && break
    sleep 0.05
done
mkdir -p "$SMALL/c"
ss --home "$SMALL/c" init --role terminal --terminal-id imei-c >/dev/null || fail "init c"
SIMSYNC_PIN=1234 ss --home "$SMALL/c" sim insert "$T/card.sim" >/dev/null || fail "insert c"
SIMSYNC_PIN=1234 SIMSYNC_PASSWORD=pw-c SIMSYNC_RECOVERY=rec-secret \
    ss --home "$SMALL/c" register --hub "$HUB_ADDR" --hub-id "$HUB_ID" \
    >/dev/null || fail "register c"
fill_leaving 4096
expect_exit 1 ss --home "$SMALL/c" sync
grep -qi 'space' "$T/last.err" || fail "no word on space: $(cat "$T/last.err")"
n=$(whole_files a small/c archive)
ss --home "$SMALL/c" status >/dev/null || fail "c's store is not usable after the shortage"
ok "a download into a full terminal fails: exit 1, $n photos written, each whole"
free_space
ss --home "$SMALL/c" sync >"$T/c.out" 2>&1 || fail "c sync after freeing: $(cat "$T/c.out")"
same_tree a small/c archive
same_tree a small/c contacts
ok "after space is freed the download completes, identical trees"
