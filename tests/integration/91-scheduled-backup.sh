#!/usr/bin/env bash
# Hub-initiated backups (seed 000 FIG 5): the hub asks a terminal's daemon
# on a schedule; the terminal answers BUSY (low battery, the user operating
# it, a backup already running) or OK. The hub retries after the interval,
# gives up after the attempt limit and leaves a notice for the user.
. "$(dirname "$0")/lib.sh"

DAEMON_PID=
stop_daemon() {
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
}
trap 'stop_daemon; cleanup' EXIT

# battery DIR PERCENT STATUS: a fake power-supply class with one battery.
battery() {
    mkdir -p "$1/BAT0"
    echo Battery >"$1/BAT0/type"
    echo "$2" >"$1/BAT0/capacity"
    echo "$3" >"$1/BAT0/status"
}

# wait_for CMD...: up to 30 s for CMD to succeed.
wait_for() {
    for _ in $(seq 1 300); do "$@" && return 0; sleep 0.1; done
    return 1
}

history() { ss --home "$T/$1" --json backup history >"$T/hist.json" 2>"$T/hist.err" \
    || fail "backup history: $(cat "$T/hist.err")"; }
count_events() { history "$1"; grep -o "\"event\":\"$2\"" "$T/hist.json" | wc -l; }
has_events() { [ "$(count_events "$1" "$2")" -ge "$3" ]; }

start_hub
new_sim sim 44123000555
new_terminal A; insert A sim; register A
put A contacts a.vcf "FN:A"
put A contacts b.vcf "FN:B"
battery "$T/ps" 5 Discharging
"$SIMSYNC" --home "$T/A" daemon --power-supply-dir "$T/ps" --busy-after-edit 0 \
    --battery-below 20 --retry-after 1 2>"$T/daemon.log" &
DAEMON_PID=$!

# Bad schedules are refused with a usage error and change nothing.
expect_exit 2 ss --home "$T/hub" hub schedule --subscriber 44123000555 --every 5x
expect_exit 2 ss --home "$T/hub" hub schedule --subscriber 44123000555 --at 25:00
expect_exit 2 ss --home "$T/hub" hub schedule --subscriber 44123000555
expect_exit 2 ss --home "$T/hub" hub schedule --subscriber 12 --every 1h
ss --home "$T/hub" hub schedule --subscriber 44123000555 --terminal imei-A \
    --every 2s --retry-interval 1s --max-attempts 5 >/dev/null || fail "schedule"
ss --home "$T/hub" --json hub schedule --subscriber 44123000555 --list >"$T/s.json" \
    || fail "schedule --list"
grep -q '"every_ms":2000' "$T/s.json" || fail "schedule list: $(cat "$T/s.json")"

# Busy twice (battery at 5%), then the battery charges: OK on attempt 3.
wait_for has_events A busy 2 || fail "no two BUSY answers: $(cat "$T/hist.json")"
battery "$T/ps" 80 Discharging
wait_for has_events A completed 1 || fail "no completed backup: $(cat "$T/hist.json") $(cat "$T/daemon.log")"
ss --home "$T/A" --json backup list >"$T/list.json" || fail "list"
[ "$(grep -o '"generation":' "$T/list.json" | wc -l)" = 1 ] || fail "generations: $(cat "$T/list.json")"
history A
grep -q '"event":"started","terminal":"imei-A","generation":0,"attempt":1' "$T/hist.json" \
    || fail "history lacks the start: $(cat "$T/hist.json")"
grep -q '"event":"retried","terminal":"imei-A","generation":0,"attempt":3' "$T/hist.json" \
    || fail "history lacks the third attempt: $(cat "$T/hist.json")"
grep -q '"event":"completed","terminal":"imei-A","generation":1,"attempt":3' "$T/hist.json" \
    || fail "history lacks the completion on attempt 3: $(cat "$T/hist.json")"
grep -q 'battery at 5%' "$T/hist.json" || fail "busy reason not kept: $(cat "$T/hist.json")"
grep -q "BUSY, battery at 5%" "$T/daemon.log" || fail "daemon log: $(cat "$T/daemon.log")"
ok "busy twice, then OK: three attempts, one generation, history shows it"

# A terminal that stays busy: 3 attempts, then the hub gives up and the
# user gets a notice.
ss --home "$T/hub" hub schedule --subscriber 44123000555 --terminal imei-A \
    --every 1d --max-attempts 3 --retry-interval 1s >/dev/null || fail "reschedule"
battery "$T/ps" 3 Discharging
# Make the new schedule fire now: a terminal-chosen next date (1 s).
ss --home "$T/A" backup now --next 1s >/dev/null || fail "backup now --next"
wait_for has_events A gave-up 1 || fail "the hub did not give up: $(cat "$T/hist.json")"
[ "$(count_events A busy)" -ge 5 ] || fail "expected 2 + 3 BUSY answers: $(cat "$T/hist.json")"
notice_on_A() { ss --home "$T/A" notices | grep -q "$1"; }
wait_for notice_on_A 'could not back up' \
    || fail "no notice on the terminal: $(ss --home "$T/A" notices)"
ok "a terminal that stays busy: the hub gave up after 3 attempts, notice delivered"

# No answer counts as a failed attempt: a stopped daemon.
kill -STOP "$DAEMON_PID"
ss --home "$T/hub" hub schedule --subscriber 44123000555 --terminal imei-A \
    --every 1s --max-attempts 1 --answer-timeout 1s >/dev/null || fail "reschedule 2"
before=$(count_events A no-answer)
more_no_answers() { [ "$(count_events A no-answer)" -gt "$before" ]; }
wait_for more_no_answers \
    || fail "no no-answer event: $(ss --home "$T/A" backup history 2>&1 | tail -5)"
kill -CONT "$DAEMON_PID"
ok "a request without an answer in time counts as a failed attempt"
ss --home "$T/hub" hub schedule --subscriber 44123000555 --terminal imei-A --remove >/dev/null \
    || fail "remove schedule"
stop_daemon
