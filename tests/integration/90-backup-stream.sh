#!/usr/bin/env bash
# A backup sends the chunks its scan cuts while it scans (read once, not
# read and named again after the snapshot), sends a chunk that two files
# share once, and the next backup streams only the new content. The
# generations restore byte for byte. A large file is named by its chunk
# list (no second pass): touching it is still not an edit, changing one
# byte is.
. "$(dirname "$0")/lib.sh"

json_field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2; }
hub_chunks() { json_field "$(ss --home "$T/hub" --json hub stats)" chunks; }

start_hub
new_sim sim 44123000777
new_terminal A; insert A sim; register A
mkdir -p "$T/A/data/archive" "$T/A/data/apps"
head -c 3000000 /dev/urandom >"$T/A/data/archive/one.bin"
cp "$T/A/data/archive/one.bin" "$T/A/data/archive/copy.bin"
head -c 1500000 /dev/zero >"$T/A/data/apps/zeros.apk"
put A contacts c.vcf "FN:C"

c0=$(hub_chunks)
out=$(ss --home "$T/A" --json backup now) || fail "backup 1: $out"
sent=$(json_field "$out" chunks_sent)
streamed=$(json_field "$out" chunks_streamed)
[ -n "$streamed" ] || fail "no chunks_streamed in the report: $out"
[ "$sent" -gt 0 ] || fail "backup 1 sent no chunk: $out"
[ "$streamed" = "$sent" ] \
    || fail "backup 1: $streamed of $sent chunks sent while scanning: $out"
[ $(( $(hub_chunks) - c0 )) = "$sent" ] \
    || fail "backup 1 sent $sent chunks, the hub gained $(( $(hub_chunks) - c0 ))"
ok "backup 1: all $sent chunks sent during the scan, the shared ones once"

head -c 2000000 /dev/urandom >"$T/A/data/archive/two.bin"
out=$(ss --home "$T/A" --json backup now) || fail "backup 2: $out"
sent2=$(json_field "$out" chunks_sent)
[ "$sent2" -gt 0 ] && [ "$(json_field "$out" chunks_streamed)" = "$sent2" ] \
    || fail "backup 2: $out"
[ "$(json_field "$out" chunk_bytes_sent)" -lt 2200000 ] \
    || fail "backup 2 sent more than the new file: $out"
out=$(ss --home "$T/A" --json backup now) || fail "backup 3: $out"
[ "$(json_field "$out" chunks_sent)" = 0 ] || fail "backup 3 of nothing new: $out"
ok "backup 2 streamed only the new file ($sent2 chunks); backup 3 sent none"

for g in 1 3; do
    new_terminal "R$g"; insert "R$g" sim; register "R$g"
    ss --home "$T/R$g" restore "$g" >"$T/restore.txt" 2>&1 \
        || fail "restore $g: $(cat "$T/restore.txt")"
done
cmp -s "$T/A/data/archive/one.bin" "$T/R1/data/archive/copy.bin" \
    || fail "generation 1: copy.bin differs"
[ ! -e "$T/R1/data/archive/two.bin" ] || fail "generation 1 holds two.bin"
for cls in archive apps contacts; do same_tree A R3 "$cls"; done
ok "generations 1 and 3 restore byte for byte"

# Touched, not edited: the scan cuts it again and finds the same list.
touch -d '2001-01-01' "$T/A/data/archive/one.bin"
out=$(ss --home "$T/A" --json sync) || fail "sync after touch: $out"
[ "$(json_field "$out" edited)" = 0 ] || fail "a touch counted as an edit: $out"
printf 'X' | dd of="$T/A/data/archive/one.bin" bs=1 seek=1000000 conv=notrunc 2>/dev/null
touch -d '2001-01-01' "$T/A/data/archive/one.bin"
out=$(ss --home "$T/A" --json sync) || fail "sync after edit: $out"
[ "$(json_field "$out" edited)" = 1 ] || fail "a one-byte edit was missed: $out"
out=$(ss --home "$T/A" --json backup now) || fail "backup 4: $out"
new_terminal R4; insert R4 sim; register R4
ss --home "$T/R4" restore 4 >"$T/restore.txt" 2>&1 || fail "restore 4: $(cat "$T/restore.txt")"
same_tree A R4 archive
ok "a touch is not an edit, a one-byte change is; generation 4 restores it"
