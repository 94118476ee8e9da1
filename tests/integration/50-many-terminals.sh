#!/usr/bin/env bash
# One hub, 100 terminals syncing at the same time (25 subscribers with four
# terminals each); afterwards each subscriber's terminals hold exactly
# their own subscriber's data.
. "$(dirname "$0")/lib.sh"

N=${SIMSYNC_MANY:-100}
start_hub
subs=$((N / 4))
for s in $(seq 1 $subs); do new_sim "s$s" "4400000000$(printf %04d "$s")"; done
# Register in parallel batches (each registration runs Argon2id).
reg_one() {
    local t=$1 s=$2
    "$SIMSYNC" --home "$T/t$t" init --role terminal --terminal-id "imei-$t" >/dev/null &&
    SIMSYNC_PIN=1234 "$SIMSYNC" --home "$T/t$t" sim insert "$T/s$s.sim" >/dev/null &&
    SIMSYNC_PIN=1234 SIMSYNC_PASSWORD=pw SIMSYNC_RECOVERY="rec-$s" \
        "$SIMSYNC" --home "$T/t$t" register --hub "$HUB_ADDR" --hub-id "$HUB_ID" >/dev/null
}
# The first terminal of each subscriber creates its key; then the rest.
# (Wait on these pids only: a bare `wait` would wait for the hub too.)
waitall() { for p in "${pids[@]}"; do wait "$p" || true; done; pids=(); }
pids=()
for s in $(seq 1 $subs); do reg_one $(( (s - 1) * 4 + 1 )) "$s" & pids+=($!); done
waitall
for s in $(seq 1 $subs); do
    for k in 2 3 4; do reg_one $(( (s - 1) * 4 + k )) "$s" & pids+=($!); done
    if [ $((s % 4)) = 0 ]; then waitall; fi
done
waitall
for t in $(seq 1 $N); do
    [ -f "$T/t$t/binding" ] || fail "terminal $t not registered"
    s=$(( (t - 1) / 4 + 1 ))
    put "t$t" contacts "from-t$t.vcf" "FN:terminal $t of subscriber $s"
done
ok "$N terminals registered"

run_all() {
    local fails=0 pids=()
    for t in $(seq 1 $N); do
        "$SIMSYNC" --home "$T/t$t" sync >"$T/t$t.out" 2>&1 & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
    [ "$fails" = 0 ] || { cat "$T"/t*.out | grep -v '^Synced' | head >&2; fail "$fails concurrent syncs failed"; }
}
run_all   # everyone uploads at once (and gets what is there)
run_all   # everyone downloads the rest
for t in $(seq 1 $N); do
    s=$(( (t - 1) / 4 + 1 ))
    n=$(ls "$T/t$t/data/contacts" | wc -l)
    [ "$n" = 4 ] || fail "terminal $t has $n contacts, expected 4"
    for f in "$T/t$t/data/contacts/"*; do
        grep -q "of subscriber $s\$" "$f" || fail "terminal $t holds another subscriber's data"
    done
done
ok "$N concurrent terminals converged per subscriber, nothing crossed"
