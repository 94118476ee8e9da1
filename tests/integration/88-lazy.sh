#!/usr/bin/env bash
# Lazy classes (seed 000 [0056]): a terminal takes metadata only for its
# lazy classes, fetches contents on demand (the exact bytes), pins items to
# keep them here and up to date, and evicts contents to free space without
# deleting them anywhere else.
. "$(dirname "$0")/lib.sh"

json_field() { printf '%s' "$1" | grep -o "\"$2\":[a-z0-9]*" | head -n1 | cut -d: -f2; }
state_of() { # state_of NAME CLASS/ITEM: local, remote or pinned
    ss --home "$T/$1" ls | awk -v it="$2" '$4 == it {print $1}'
}

start_hub
new_sim sim 44123000960
for t in A L; do new_terminal $t; insert $t sim; register $t; done
mkdir -p "$T/A/data/archive/2026"
head -c 300000 /dev/urandom >"$T/A/data/archive/2026/beach.jpg"
head -c 250000 /dev/urandom >"$T/A/data/archive/2026/hill.jpg"
put A contacts ana.vcf "BEGIN:VCARD ana"
sync_ok A

expect_exit 2 ss --home "$T/L" classes lazy archive,nosuch
ss --home "$T/L" classes lazy archive >/dev/null || fail "classes lazy"
[ "$(ss --home "$T/L" classes lazy)" = archive ] || fail "lazy: $(ss --home "$T/L" classes lazy)"
sync_ok L
[ ! -e "$T/L/data/archive/2026/beach.jpg" ] || fail "a lazy class downloaded content"
[ "$(cat "$T/L/data/contacts/ana.vcf")" = "BEGIN:VCARD ana" ] || fail "a normal class did not download"
[ "$(state_of L archive/2026/beach.jpg)" = remote ] || fail "ls: $(ss --home "$T/L" ls)"
ss --home "$T/L" --json ls archive | python3 -c '
import json, sys
items = {i["name"]: i for i in json.load(sys.stdin)["items"]}
b = items["2026/beach.jpg"]
assert b["size"] == 300000 and not b["local"] and len(b["hash"]) == 16, b
assert set(items) == {"2026/beach.jpg", "2026/hill.jpg"}, items' || fail "ls --json"
# The missing files are not deletions: a sync sends nothing.
out=$(ss --home "$T/L" --json sync) || fail "sync: $out"
[ "$(json_field "$out" sent_items)" = 0 ] || fail "a lazy terminal sent something: $out"
ok "a lazy class arrives as metadata (name, size, hash); nothing is sent back"

ss --home "$T/L" fetch archive/2026/beach.jpg >/dev/null || fail "fetch"
cmp "$T/A/data/archive/2026/beach.jpg" "$T/L/data/archive/2026/beach.jpg" || fail "fetched bytes differ"
[ "$(state_of L archive/2026/beach.jpg)" = local ] || fail "after fetch: $(ss --home "$T/L" ls)"
out=$(ss --home "$T/L" --json sync) || fail "sync: $out"
[ "$(json_field "$out" sent_items)" = 0 ] || fail "a fetch was sent as a change: $out"
expect_exit 2 ss --home "$T/L" fetch archive
expect_exit 1 ss --home "$T/L" fetch archive/2026/none.jpg
ok "fetch brings the exact bytes, and is not a change"

# A fetched item is kept up to date; an edit on A arrives.
head -c 300000 /dev/urandom >"$T/A/data/archive/2026/beach.jpg"
sync_ok A; sync_ok L
cmp "$T/A/data/archive/2026/beach.jpg" "$T/L/data/archive/2026/beach.jpg" || fail "a fetched item was not updated"

# Evict frees the space; A keeps the item, the hub too.
out=$(ss --home "$T/L" --json evict archive/2026/beach.jpg) || fail "evict: $out"
[ "$(json_field "$out" freed)" = 300000 ] || fail "evict: $out"
[ ! -e "$T/L/data/archive/2026/beach.jpg" ] || fail "evict left the file"
[ "$(state_of L archive/2026/beach.jpg)" = remote ] || fail "after evict: $(ss --home "$T/L" ls)"
out=$(ss --home "$T/L" --json sync) || fail "sync: $out"
[ "$(json_field "$out" sent_items)" = 0 ] || fail "an eviction was sent: $out"
sync_ok A
[ -s "$T/A/data/archive/2026/beach.jpg" ] || fail "evicting on L deleted the item on A"
new_terminal C; insert C sim; register C; sync_ok C
cmp "$T/A/data/archive/2026/beach.jpg" "$T/C/data/archive/2026/beach.jpg" || fail "the hub lost the evicted item"
ok "evict frees 300000 bytes here; A, the hub and a new terminal keep the item"

# An edit the hub does not have cannot be evicted.
ss --home "$T/L" fetch archive/2026/hill.jpg >/dev/null || fail "fetch hill"
echo "edited here" >>"$T/L/data/archive/2026/hill.jpg"
expect_exit 3 ss --home "$T/L" evict archive/2026/hill.jpg
grep -q "sync first" "$T/last.err" || fail "evict of an edit: $(cat "$T/last.err")"
sync_ok L
ss --home "$T/L" evict archive/2026/hill.jpg >/dev/null || fail "evict after sync"
sync_ok A
tail -c 12 "$T/A/data/archive/2026/hill.jpg" | grep -q "edited here" || fail "the edit made before the evict was lost"
ok "an unsynced edit is refused (exit 3); after a sync it is on A and the evict goes"

# Pin: fetched now and kept; refuses evict until unpinned; new versions come.
ss --home "$T/L" pin archive/2026/hill.jpg >/dev/null || fail "pin"
[ "$(state_of L archive/2026/hill.jpg)" = pinned ] || fail "after pin: $(ss --home "$T/L" ls)"
cmp "$T/A/data/archive/2026/hill.jpg" "$T/L/data/archive/2026/hill.jpg" || fail "pin did not fetch"
expect_exit 3 ss --home "$T/L" evict archive/2026/hill.jpg
head -c 1000 /dev/urandom >"$T/A/data/archive/2026/hill.jpg"
head -c 120000 /dev/urandom >"$T/A/data/archive/2026/new.jpg"
sync_ok A; sync_ok L
cmp "$T/A/data/archive/2026/hill.jpg" "$T/L/data/archive/2026/hill.jpg" || fail "a pinned item was not updated"
[ ! -e "$T/L/data/archive/2026/new.jpg" ] || fail "a new lazy item arrived with content"
ss --home "$T/L" unpin archive/2026/hill.jpg >/dev/null || fail "unpin"
ss --home "$T/L" evict archive/2026/hill.jpg >/dev/null || fail "evict after unpin"
ok "pin fetches and keeps an item current, and blocks evict until unpinned"

# A backup of the lazy terminal still holds every item, and restores.
ss --home "$T/L" backup now >/dev/null || fail "backup of a lazy terminal"
new_terminal R; insert R sim; register R
ss --home "$T/R" restore 1 >/dev/null || fail "restore"
for f in beach.jpg hill.jpg new.jpg; do
    cmp "$T/A/data/archive/2026/$f" "$T/R/data/archive/2026/$f" || fail "restored $f differs"
done
ok "a backup of a lazy terminal holds the remote items; they restore byte for byte"
