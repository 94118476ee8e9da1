#!/usr/bin/env bash
# Retention (backup forget) with chunk reclamation, forgotten numbers never
# reused; restore jobs left for another bound terminal; --delete-after; the
# daemon's pending-size trigger.
. "$(dirname "$0")/lib.sh"

json_field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2; }
hub_chunk_bytes() { json_field "$(ss --home "$T/hub" --json hub stats)" chunk_bytes; }
backup() { ss --home "$T/$1" --json backup now >"$T/b.json" 2>&1 \
    || fail "backup on $1: $(cat "$T/b.json")"; json_field "$(cat "$T/b.json")" generation; }

start_hub
new_sim sim 44123000777
new_terminal A; insert A sim; register A
new_terminal B; insert B sim; register B
put A contacts a.vcf "FN:A v1"
mkdir -p "$T/A/data/archive"
head -c 3000000 /dev/urandom >"$T/A/data/archive/old.bin"
[ "$(backup A)" = 1 ] || fail "generation 1"
put A contacts a.vcf "FN:A v2"
[ "$(backup A)" = 2 ] || fail "generation 2"
rm "$T/A/data/archive/old.bin"
put A contacts a.vcf "FN:A v3"
[ "$(backup A)" = 3 ] || fail "generation 3"
put A contacts a.vcf "FN:A v4"
put A contacts b.vcf "FN:B"
[ "$(backup A)" = 4 ] || fail "generation 4"

# Bad input: nothing to keep, an unknown generation, both forms at once.
expect_exit 2 ss --home "$T/A" backup forget
expect_exit 2 ss --home "$T/A" backup forget 2 --keep-last 1
expect_exit 2 ss --home "$T/A" backup forget --keep-last x
expect_exit 1 ss --home "$T/A" backup forget 99
grep -q "no generation 99" "$T/last.err" || fail "forget 99: $(cat "$T/last.err")"

before=$(hub_chunk_bytes)
out=$(ss --home "$T/A" --json backup forget --keep-last 2 --dry-run) || fail "dry run: $out"
[ "$(json_field "$out" forgotten)" = 2 ] || fail "dry run would forget: $out"
[ "$(hub_chunk_bytes)" = "$before" ] || fail "a dry run changed the hub"
[ "$(ss --home "$T/A" --json backup list | grep -o '"generation":' | wc -l)" = 4 ] \
    || fail "a dry run forgot generations"
out=$(ss --home "$T/A" --json backup forget --keep-last 2) || fail "forget: $out"
[ "$(json_field "$out" forgotten)" = 2 ] || fail "forgotten: $out"
freed=$(json_field "$out" bytes_freed)
after=$(hub_chunk_bytes)
# old.bin (3 MB) was only in generations 1 and 2.
[ "$freed" -ge 3000000 ] && [ $((before - after)) = "$freed" ] \
    || fail "reclaimed $freed bytes; hub chunk bytes $before -> $after"
list=$(ss --home "$T/A" --json backup list) || fail "list after forget"
printf '%s' "$list" | grep -q '"generation":1,' && fail "generation 1 still listed: $list"
printf '%s' "$list" | grep -q '"generation":3,' || fail "generation 3 gone: $list"
ss --home "$T/hub" hub generations --subscriber 44123000777 >"$T/hg.txt" || fail "hub generations"
[ "$(grep -c '(forgotten)' "$T/hg.txt")" = 2 ] || fail "hub generations: $(cat "$T/hg.txt")"
expect_exit 1 ss --home "$T/A" restore 1 --on-conflict overwrite
grep -q "forgotten" "$T/last.err" || fail "restore of a forgotten generation: $(cat "$T/last.err")"
# B never saw the forget, but the tokens show it was asked for: no alarm.
ss --home "$T/B" backup list >/dev/null || fail "B refuses a legitimately forgotten list"
[ "$(backup A)" = 5 ] || fail "numbers are reused after forgetting"
ss --home "$T/A" --json backup history | grep -q '"event":"forgotten"' || fail "history lacks forgotten"
ok "forget --keep-last 2: 2 forgotten, $freed bytes of chunks reclaimed, numbers not reused"

# A restore job for B: left by A, run by B at its next contact.
expect_exit 2 ss --home "$T/A" restore 4 --to-terminal imei-B --on-conflict ask
expect_exit 1 ss --home "$T/A" restore 4 --to-terminal imei-nobody --on-conflict overwrite
grep -q "imei-nobody" "$T/last.err" || fail "unknown terminal: $(cat "$T/last.err")"
out=$(ss --home "$T/A" --json restore 4 --to-terminal imei-B --classes contacts \
    --on-conflict overwrite) || fail "leave job: $out"
[ -n "$(json_field "$out" job)" ] || fail "no job id: $out"
[ ! -e "$T/B/data/contacts/b.vcf" ] || fail "B has b.vcf before its contact"
ss --home "$T/B" sync >"$T/bsync.out" 2>&1 || fail "B sync: $(cat "$T/bsync.out")"
grep -q "Ran 1 restore job" "$T/bsync.out" || fail "B did not run the job: $(cat "$T/bsync.out")"
[ "$(cat "$T/B/data/contacts/a.vcf")" = "FN:A v4" ] || fail "B's a.vcf"
ss --home "$T/B" notices | grep -q "restored generation 4 as asked from terminal imei-A" \
    || fail "B's notice: $(ss --home "$T/B" notices)"
ss --home "$T/B" sync >"$T/bsync.out" 2>&1 || fail "B sync 2"
grep -q "restore job" "$T/bsync.out" && fail "the job ran twice"
ok "restore job left for another terminal ran once at its next contact, with a notice"

# --delete-after forgets the generation once restored.
out=$(ss --home "$T/A" --json restore 5 --classes contacts --on-conflict skip --delete-after) \
    || fail "restore --delete-after: $out"
printf '%s' "$out" | grep -q '"forgotten":true' || fail "not forgotten: $out"
ss --home "$T/A" --json backup list | grep -q '"generation":5,' && fail "5 still listed"
ok "restore --delete-after forgot the generation"

# Pending-size trigger: the daemon backs up once 100 KB of changes are in
# no generation.
ss --home "$T/A" backup now >/dev/null || fail "baseline backup"
"$SIMSYNC" --home "$T/A" daemon --backup-after-bytes 100000 --check-every 1 \
    --power-supply-dir "$T/none" 2>"$T/daemon.log" &
DPID=$!
trap 'kill $DPID 2>/dev/null; wait $DPID 2>/dev/null; cleanup' EXIT
sleep 2.5
n0=$(ss --home "$T/A" --json backup list | grep -o '"generation":' | wc -l)
head -c 50000 /dev/urandom >"$T/A/data/archive/small.bin"
sleep 2.5
n1=$(ss --home "$T/A" --json backup list | grep -o '"generation":' | wc -l)
[ "$n1" = "$n0" ] || fail "backed up below the limit: $(cat "$T/daemon.log")"
head -c 80000 /dev/urandom >"$T/A/data/archive/more.bin"
for _ in $(seq 1 100); do
    n2=$(ss --home "$T/A" --json backup list | grep -o '"generation":' | wc -l)
    [ "$n2" -gt "$n1" ] && break
    sleep 0.2
done
[ "$n2" -gt "$n1" ] || fail "no backup after 130 KB pending: $(cat "$T/daemon.log")"
# (The count also holds what the daemon's own start-up sync received.)
grep -q "bytes in [0-9]* changed items are in no generation" "$T/daemon.log" \
    || fail "daemon log: $(cat "$T/daemon.log")"
ok "pending-size trigger: nothing at 50 KB, a backup at 130 KB (limit 100 KB)"

# A job pushed to a running daemon: it runs it without a sync.
gen=$(ss --home "$T/B" --json backup list | grep -o '"generation":[0-9]*' | tail -n1 | cut -d: -f2)
[ -n "$gen" ] || fail "no generation to restore"
put A contacts a.vcf "FN:A edited after"
ss --home "$T/B" restore "$gen" --to-terminal imei-A --item contacts/a.vcf \
    --on-conflict keep-both >/dev/null || fail "leave a job for A"
for _ in $(seq 1 100); do
    ss --home "$T/A" notices | grep -q "as asked from terminal imei-B" && break
    sleep 0.2
done
ss --home "$T/A" notices | grep -q "as asked from terminal imei-B" \
    || fail "A's daemon did not run the job: $(cat "$T/daemon.log")"
ls "$T/A/data/contacts/" | grep -q "a.restored-" || fail "no kept-both copy on A"
grep -q "restore job .* from terminal imei-B" "$T/daemon.log" || fail "daemon log: $(cat "$T/daemon.log")"
ok "a restore job pushed to a running daemon ran at once"
