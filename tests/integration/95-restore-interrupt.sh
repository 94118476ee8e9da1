#!/usr/bin/env bash
# A restore killed with SIGKILL while it writes large files leaves no
# partial file under any item's name, and running it again completes it
# byte for byte. A changed chunk on the hub stops the restore at the item
# that uses it (exit 5, nothing under its name, no temp file), and the
# items written before it are recorded: a second restore finds them
# unchanged. The link is slowed by linkshim so that "while it writes" is a
# few seconds long.
. "$(dirname "$0")/lib.sh"

json_field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2; }

start_hub
new_sim sim 44123000955
new_terminal A; insert A sim; register A
# Small items, more than a restore batch holds, and three files of
# several chunks each.
mkdir -p "$T/A/data/contacts" "$T/A/data/archive"
for i in $(seq 1 600); do
    printf 'BEGIN:VCARD\nFN:Person %d\nEND:VCARD\n' "$i" \
        >"$T/A/data/contacts/c$i.vcf"
done
for i in 1 2 3; do
    head -c $((3000000 + i * 1234)) /dev/urandom >"$T/A/data/archive/big$i.bin"
done
ss --home "$T/A" backup now >/dev/null || fail "backup now on A"

# 1. SIGKILL in the middle of the large files.
start_shim slow --rate 2000000
new_terminal C; insert C sim
HUB_ADDR=$SHIM_ADDR register C # C reaches the hub through the shim
"$SIMSYNC" --home "$T/C" restore 1 --on-conflict overwrite >"$T/r1.out" 2>&1 &
RPID=$!
for _ in $(seq 1 200); do
    [ -d "$T/C/data/archive" ] && break
    sleep 0.05
done
[ -d "$T/C/data/archive" ] || fail "the restore never reached the large files: $(cat "$T/r1.out")"
sleep 0.5
kill -9 "$RPID"; wait "$RPID" 2>/dev/null
whole=0
for i in 1 2 3; do
    f=$T/C/data/archive/big$i.bin
    [ -e "$f" ] || continue
    cmp -s "$f" "$T/A/data/archive/big$i.bin" \
        || fail "big$i.bin is under its name but not whole after the kill"
    whole=$((whole + 1))
done
[ "$whole" -lt 3 ] || fail "the restore had finished before the kill; the test proves nothing"
ss --home "$T/C" restore 1 --on-conflict overwrite >"$T/r2.out" 2>&1 \
    || fail "restore after the kill: $(cat "$T/r2.out")"
# The next scan removes what the killed restore left in temp files.
sync_ok C
tmps=$(find "$T/C/data" -name '.simsync-tmp-*')
[ -z "$tmps" ] || fail "temp files left after a scan: $tmps"
for cls in contacts archive; do same_tree A C $cls; done
ok "killed with $whole of 3 large files in place (each whole); restore run again completes, identical folders"

# 2. A changed chunk.
stop_shims
new_terminal D; insert D sim; register D
"${HUBTAMPER:-$(cd "$(dirname "$0")/../.." && pwd)/build/tests/tools/hubtamper}" \
    "$T/hub" chunk >"$T/tamper.out" 2>&1 || fail "hubtamper: $(cat "$T/tamper.out")"
expect_exit 5 ss --home "$T/D" restore 1
grep -q "archive/big[123].bin from generation 1 failed its integrity check" "$T/last.err" \
    || fail "the message does not name the item: $(cat "$T/last.err")"
bad=$(grep -o "big[123].bin" "$T/last.err" | head -n1)
[ ! -e "$T/D/data/archive/$bad" ] || fail "$bad was written from a changed chunk"
tmps=$(find "$T/D/data" -name '.simsync-tmp-*')
[ -z "$tmps" ] || fail "temp files left behind: $tmps"
before=$(find "$T/D/data/contacts" -type f 2>/dev/null | wc -l)
[ "$before" -lt 600 ] || fail "all contacts were written although the restore stopped"
out=$(ss --home "$T/D" --json restore 1 --classes contacts) \
    || fail "restore of the contacts after the failure: $out"
[ "$(json_field "$out" unchanged)" = "$before" ] \
    || fail "$before contacts were written before the failure but not all recorded: $out"
same_tree A D contacts
ok "changed chunk of $bad: exit 5 naming it, nothing under its name, no temp file; the $before contacts written before it were recorded"
