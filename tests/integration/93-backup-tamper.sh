#!/usr/bin/env bash
# A hub that lies: its store is edited behind its back by hubtamper (a
# changed chunk, the newest generation dropped, a forget no terminal asked
# for) and the terminals must notice and refuse, writing nothing they
# cannot vouch for. Last, a restore must not write through symlinks that
# were put in the data folder.
#
# The tamper commands act on every subscriber of the hub, so each case has
# its own subscriber, made after the tampering of the cases before it.
. "$(dirname "$0")/lib.sh"

HUBTAMPER=${HUBTAMPER:-$(cd "$(dirname "$0")/../.." && pwd)/build/tests/tools/hubtamper}
[ -x "$HUBTAMPER" ] || fail "no hubtamper at $HUBTAMPER (build the hubtamper target)"

# tamper ARGS...: run hubtamper on the hub's home; its stdout is kept in
# $T/tamper.out.
tamper() {
    "$HUBTAMPER" "$T/hub" "$@" >"$T/tamper.out" 2>"$T/tamper.err" \
        || { cat "$T/tamper.out" "$T/tamper.err" >&2; fail "hubtamper $*"; }
}

# backup NAME: make a generation on terminal NAME.
backup() {
    ss --home "$T/$1" backup now >"$T/backup.out" 2>&1 \
        || { cat "$T/backup.out" >&2; fail "backup now on $1"; }
}

# gens_listed NAME: the generation numbers `backup list` shows, one line.
gens_listed() {
    ss --home "$T/$1" --json backup list >"$T/list.json" 2>"$T/list.err" \
        || { cat "$T/list.err" >&2; fail "backup list on $1"; }
    grep -o '"generation":[0-9]*' "$T/list.json" | cut -d: -f2 | tr '\n' ' ' \
        | sed 's/ $//'
}

# last_says TEXT: the last expect_exit command's stderr contains TEXT.
last_says() {
    grep -q -- "$1" "$T/last.err" \
        || fail "expected '$1' in the message, got: $(cat "$T/last.err")"
}

start_hub

# ---------------------------------------------------------------- a
# A changed chunk: the restore stops at the item that uses it, and nothing
# of that item reaches the data folder.
new_sim s1 44123000931
new_terminal A; insert A s1; register A
put A contacts a.vcf "FN:Alice"
put A pim m.ics "SUMMARY:Meeting"
mkdir -p "$T/A/data/archive"
head -c 1048576 /dev/urandom >"$T/A/data/archive/big.bin"
backup A
put A contacts b.vcf "FN:Bob"
backup A
[ "$(gens_listed A)" = "1 2" ] || fail "A's generations: $(cat "$T/list.json")"

# Control: untouched, generation 1 restores onto another terminal of the
# subscriber byte for byte.
new_terminal C; insert C s1; register C
expect_exit 0 ss --home "$T/C" restore 1
cmp -s "$T/A/data/archive/big.bin" "$T/C/data/archive/big.bin" \
    || fail "control restore: big.bin differs"
rm "$T/C/data/archive/big.bin"

tamper chunk
size=$(cat "$T/tamper.out")
[ "$size" -gt 16384 ] || fail "hubtamper changed a chunk of $size bytes"
expect_exit 5 ss --home "$T/C" restore 1
last_says "integrity check"
[ ! -e "$T/C/data/archive/big.bin" ] || fail "big.bin was written from a changed chunk"
leftover=$(ls -A "$T/C/data/archive" 2>/dev/null)
[ -z "$leftover" ] || fail "the archive folder holds leftovers: $leftover"
tmps=$(find "$T/C/data" -name '.simsync-tmp-*')
[ -z "$tmps" ] || fail "temp files left behind: $tmps"
ok "changed chunk ($size bytes): restore exits 5 ($(head -c 120 "$T/last.err")...), no file, no partial or temp file"

# ---------------------------------------------------------------- b
# A hub serving an old state: the terminal remembers the newest generation
# it saw.
new_sim s2 44123000932
new_terminal B; insert B s2; register B
for i in 1 2 3; do put B contacts "g$i.vcf" "FN:Gen $i"; backup B; done
[ "$(gens_listed B)" = "1 2 3" ] || fail "B's generations: $(cat "$T/list.json")"
tamper drop-latest
grep -q "dropped generation 3" "$T/tamper.out" \
    || fail "drop-latest: $(cat "$T/tamper.out")"
expect_exit 5 ss --home "$T/B" backup list
last_says "old state"
expect_exit 5 ss --home "$T/B" restore 2
last_says "old state"
ok "latest generation dropped: backup list and restore 2 exit 5 ($(head -c 140 "$T/last.err")...)"

# ---------------------------------------------------------------- c
# A real forget is accepted; a forget claimed without the terminals' token
# is not.
new_sim s3 44123000933
new_terminal D; insert D s3; register D
for i in 1 2 3; do put D contacts "f$i.vcf" "FN:Forget $i"; backup D; done
expect_exit 0 ss --home "$T/D" backup forget 2
[ "$(gens_listed D)" = "1 3" ] || fail "after forget 2: $(cat "$T/list.json")"
ok "a terminal's own forget of generation 2: backup list exits 0 and shows 1 3"

tamper fake-forget 1
expect_exit 5 ss --home "$T/D" backup list
last_says "forgotten"
last_says "generation 1"
ok "generation 1 marked forgotten without a token: backup list exits 5 ($(head -c 140 "$T/last.err")...)"

# ---------------------------------------------------------------- d
# Restore never writes through a symlink, to a file or on the way to one.
new_sim s4 44123000934
new_terminal E; insert E s4; register E
put E contacts x.vcf "FN:X"
put E contacts y.vcf "FN:Y"
put E pim z.ics "SUMMARY:Z"
mkdir -p "$T/E/data/archive/sub"
printf 'photo bytes\n' >"$T/E/data/archive/sub/p.jpg"
backup E
gen=$(gens_listed E)
[ "$gen" = 1 ] || fail "E's generations: $(cat "$T/list.json")"

mkdir -p "$T/outside/dir"
printf 'not yours\n' >"$T/outside/file.txt"
sum=$(sha256sum <"$T/outside/file.txt")
rm "$T/E/data/contacts/x.vcf"
ln -s "$T/outside/file.txt" "$T/E/data/contacts/x.vcf"
rm -r "$T/E/data/archive/sub"
ln -s "$T/outside/dir" "$T/E/data/archive/sub"
# The other items must really be restored, not found unchanged.
rm "$T/E/data/contacts/y.vcf" "$T/E/data/pim/z.ics"

expect_exit 3 ss --home "$T/E" restore "$gen" --on-conflict overwrite
last_says "refused"
[ "$(sha256sum <"$T/outside/file.txt")" = "$sum" ] \
    || fail "the file outside the data folder was changed through x.vcf"
[ -z "$(ls -A "$T/outside/dir")" ] \
    || fail "restore wrote into the outside folder: $(ls -A "$T/outside/dir")"
[ -L "$T/E/data/contacts/x.vcf" ] || fail "x.vcf is no longer the symlink"
[ -L "$T/E/data/archive/sub" ] || fail "archive/sub is no longer the symlink"
[ "$(cat "$T/E/data/contacts/y.vcf" 2>/dev/null)" = "FN:Y" ] || fail "y.vcf not restored"
[ "$(cat "$T/E/data/pim/z.ics" 2>/dev/null)" = "SUMMARY:Z" ] || fail "z.ics not restored"
ok "symlinked x.vcf and archive/sub: restore exits 3 ($(head -c 120 "$T/last.err")...), outside untouched, y.vcf and z.ics restored"
