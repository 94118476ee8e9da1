#!/usr/bin/env bash
# Renames: the scan pairs a new file with a vanished item of the same inode,
# size and mtime, records the new name with the old content (nothing read,
# no chunk sent) and a tombstone for the old name; the other terminal copies
# its own file instead of downloading. Renaming a whole folder is not a
# mass deletion.
. "$(dirname "$0")/lib.sh"

json_field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2; }
sync_json() {
    ss --home "$T/$1" --json sync "${@:2}" >"$T/sync.json" 2>"$T/sync.err" \
        || { cat "$T/sync.json" "$T/sync.err" >&2; fail "sync $1"; }
    cat "$T/sync.json"
}

start_hub
new_sim sim 44123000222
for t in A B; do new_terminal $t; insert $t sim; register $t; done
mkdir -p "$T/A/data/archive/trip"
head -c 3000000 /dev/urandom >"$T/A/data/archive/photo.jpg"
for i in 1 2 3 4 5; do head -c 200000 /dev/urandom >"$T/A/data/archive/trip/p$i.jpg"; done
sync_ok A; sync_ok B
same_tree A B archive

mkdir -p "$T/A/data/archive/2026"
mv "$T/A/data/archive/photo.jpg" "$T/A/data/archive/2026/photo.jpg"
out=$(sync_json A)
[ "$(json_field "$out" renamed)" = 1 ] || fail "the rename was not detected: $out"
[ "$(json_field "$out" deleted)" = 0 ] || fail "a rename counted as a deletion: $out"
sent=$(json_field "$out" sent_bytes)
[ "$sent" -lt 20000 ] || fail "A sent $sent content bytes for a rename"
out=$(sync_json B)
recv=$(json_field "$out" recv_bytes)
[ "$recv" -lt 20000 ] || fail "B downloaded $recv content bytes for a rename"
[ ! -e "$T/B/data/archive/photo.jpg" ] || fail "the old name is still on B"
same_tree A B archive
ok "a 3 MB rename sends $sent content bytes up and $recv down; B has it under the new name"

# Renaming a folder of 5 items (all of them but one) is not a mass deletion.
mv "$T/A/data/archive/trip" "$T/A/data/archive/trip-2026"
out=$(sync_json A)
[ "$(json_field "$out" renamed)" = 5 ] || fail "folder rename: $out"
sync_ok B
same_tree A B archive
ok "renaming a folder of 5 items passes the mass-delete guard and syncs"

# A rename on A while B edited the old name: nothing is lost.
mv "$T/A/data/archive/2026/photo.jpg" "$T/A/data/archive/2026/best.jpg"
head -c 100000 /dev/urandom >>"$T/B/data/archive/2026/photo.jpg"
sync_ok A; sync_ok B; sync_ok A
same_tree A B archive
[ -e "$T/A/data/archive/2026/best.jpg" ] || fail "the renamed file is gone"
[ "$(stat -c %s "$T/A/data/archive/2026/photo.jpg")" = 3100000 ] \
    || fail "B's edit of the old name was lost"
ok "a rename concurrent with an edit of the old name keeps both"
