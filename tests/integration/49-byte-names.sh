#!/usr/bin/env bash
# Names are bytes (issue 6 item 6, invalid UTF-8): a file whose name is not
# UTF-8 (Latin-1 "caf\xe9.vcf") syncs to another terminal under exactly
# the same bytes, and every --json listing that shows it (ls, backup
# show, restore --dry-run) is still valid JSON, the byte printed as
# U+FFFD.
. "$(dirname "$0")/lib.sh"

start_hub
new_sim card 440100000000049
new_terminal a; insert a card; register a
new_terminal b; insert b card; register b
name=$(printf 'caf\xe9.vcf')
put a contacts "$name" "BEGIN:VCARD latin-1 name"
put a contacts plain.vcf "BEGIN:VCARD plain"
sync_ok a
sync_ok b
[ -f "$T/b/data/contacts/$name" ] || fail "b has no file under the Latin-1 name"
cmp -s "$T/a/data/contacts/$name" "$T/b/data/contacts/$name" \
    || fail "the file differs on b"
same_tree a b contacts
ok "a name that is not UTF-8 syncs byte for byte"

# json_ok FILE: the file is one valid JSON document (strict UTF-8).
json_ok() {
    python3 -c 'import json, sys; json.loads(open(sys.argv[1], "rb").read().decode("utf-8", "strict"))' "$1" \
        || { cat "$1" >&2; fail "not valid JSON: $2"; }
}
ss --home "$T/b" --json ls contacts >"$T/ls.json" || fail "ls"
json_ok "$T/ls.json" "ls"
grep -q 'caf\\ufffd.vcf' "$T/ls.json" || fail "ls does not show the name: $(cat "$T/ls.json")"
ss --home "$T/a" --json backup now >/dev/null || fail "backup"
ss --home "$T/a" --json backup show 1 >"$T/show.json" || fail "backup show"
json_ok "$T/show.json" "backup show"
ss --home "$T/b" --json restore 1 --dry-run >"$T/dry.json" || fail "restore --dry-run"
json_ok "$T/dry.json" "restore --dry-run"
ok "--json output stays valid JSON (U+FFFD for the byte)"
