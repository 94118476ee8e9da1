#!/usr/bin/env bash
# The daemon syncs by itself, as its policy says (seed 003): the SIM moves
# from terminal A to terminal B while both run a daemon (A uploads before
# `sim remove` returns, B downloads on `sim insert`), a falling battery
# makes B upload first, an edit is uploaded after the debounce; `policy
# set/show` round-trips and refuses bad keys and values; `log` shows every
# decision, also as JSON.
. "$(dirname "$0")/lib.sh"

DAEMONS=
stop_daemons() {
    for p in $DAEMONS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    DAEMONS=
}
trap 'stop_daemons; cleanup' EXIT

# battery DIR PERCENT STATUS: a fake power-supply class with one battery.
battery() {
    mkdir -p "$1/BAT0"
    echo Battery >"$1/BAT0/type"
    echo "$2" >"$1/BAT0/capacity"
    echo "$3" >"$1/BAT0/status"
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s, at most SECONDS.
wait_for() {
    local tries=$(($1 * 10)); shift
    for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.1; done
    return 1
}

# log_has NAME PYTHON-CONDITION: the condition holds for some entry `e` of
# NAME's decision log (read as JSON).
log_has() {
    ss --home "$T/$1" --json log 2>/dev/null | python3 -c "
import json, sys
entries = json.load(sys.stdin)['entries']
sys.exit(0 if any($2 for e in entries) else 1)"
}
show_log() { ss --home "$T/$1" log 2>&1; cat "$T/$1.daemon" 2>/dev/null; }

json_field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2; }
hub_items() { json_field "$(ss --home "$T/hub" --json hub stats)" items; }
pending_up() {
    ss --home "$T/$1" --json status | python3 -c "
import json, sys
print(sum(c['pending_up'] for c in json.load(sys.stdin)['classes']))"
}

start_hub
new_sim sim 44123000960
new_terminal A; insert A sim; register A
new_terminal B; insert B sim; register B
ss --home "$T/B" sim remove >"$T/rm0.out" || fail "sim remove without a daemon"
grep -q "SIM removed" "$T/rm0.out" || fail "sim remove: $(cat "$T/rm0.out")"

# ---------------------------------------------------------------- policy
expect_exit 2 ss --home "$T/A" policy set no.such.key 1
grep -q "unknown policy key 'no.such.key'" "$T/last.err" \
    || fail "bad key: $(cat "$T/last.err")"
expect_exit 2 ss --home "$T/A" policy set sync.every_seconds 5x
grep -q "sync.every_seconds: unknown unit 'x'" "$T/last.err" \
    || fail "bad value: $(cat "$T/last.err")"
expect_exit 2 ss --home "$T/A" policy set sync.battery_below 101
expect_exit 2 ss --home "$T/A" policy set sync.retry_min_seconds 1h
grep -q "exceeds sync.retry_max_seconds" "$T/last.err" \
    || fail "conflicting keys: $(cat "$T/last.err")"
ss --home "$T/A" policy set sync.every_seconds 5400 >"$T/set.out" \
    || fail "policy set"
grep -q "sync.every_seconds is now 90m" "$T/set.out" || fail "set: $(cat "$T/set.out")"
ss --home "$T/A" policy show | grep -Eq '^sync.every_seconds +90m ' \
    || fail "show: $(ss --home "$T/A" policy show)"
ss --home "$T/A" --json policy show | python3 -c "
import json, sys
p = {k['key']: k['value'] for k in json.load(sys.stdin)['policy']}
assert p['sync.every_seconds'] == '90m', p
assert p['sim.remove_timeout_seconds'] == '30s', p" || fail "show --json"
for t in A B; do
    # Only the triggers each part below proves.
    ss --home "$T/$t" policy set sync.every_seconds 0 >/dev/null || fail "set $t"
    ss --home "$T/$t" policy set sync.after_update off >/dev/null || fail "set $t"
done
ok "policy set/show round trip; bad key, bad value, conflicting keys: exit 2"

# ---------------------------------------------------------------- daemons
battery "$T/psA" 90 Discharging
battery "$T/psB" 90 Discharging
put A contacts base.vcf "FN:Base"
for t in A B; do
    "$SIMSYNC" --home "$T/$t" daemon --power-supply-dir "$T/ps$t" \
        --battery-below 0 2>"$T/$t.daemon" &
    DAEMONS="$DAEMONS $!"
done
# A follower of B's log, from before anything happened there.
"$SIMSYNC" --home "$T/B" --json log --follow >"$T/follow.out" 2>"$T/follow.err" &
FOLLOW=$!
DAEMONS="$DAEMONS $FOLLOW"
# A starts with its SIM: a full sync (trigger start) uploads base.vcf.
wait_for 20 log_has A "e['kind'] == 'done' and e['trigger'] == 'start' and e['result'] == 'ok'" \
    || fail "A did not sync at start: $(show_log A)"
log_has B "e['kind'] == 'event' and 'no SIM inserted' in e['text']" \
    || fail "B's start: $(show_log B)"
expect_exit 3 ss --home "$T/A" daemon --power-supply-dir "$T/psA"
grep -q "another daemon runs" "$T/last.err" || fail "second daemon: $(cat "$T/last.err")"
expect_exit 3 ss --home "$T/A" policy confirm yes
grep -q "asked nothing" "$T/last.err" || fail "confirm: $(cat "$T/last.err")"

# ------------------------------------------------ the SIM moves from A to B
items0=$(hub_items)
put A contacts moved.vcf "FN:Edited on A just before the SIM moved"
ss --home "$T/A" sim remove >"$T/rm.out" 2>&1 || fail "sim remove on A: $(cat "$T/rm.out")"
# When `sim remove` returns, the hub has the edit and A has nothing pending.
[ "$(hub_items)" = $((items0 + 1)) ] \
    || fail "the hub lacks the edit after sim remove: $(cat "$T/rm.out") $(show_log A)"
[ "$(pending_up A)" = 0 ] || fail "A still has pending changes: $(show_log A)"
grep -q "Daemon: uploading before the SIM goes" "$T/rm.out" \
    || fail "sim remove did not say what it waited for: $(cat "$T/rm.out")"
grep -q "SIM removed" "$T/rm.out" || fail "sim remove: $(cat "$T/rm.out")"
[ ! -e "$T/A/sim" ] || fail "the SIM is still in A"
log_has A "e['kind'] == 'done' and e['action'] == 'upload' and e['trigger'] == 'sim-remove' and e['result'] == 'ok' and e['sent_items'] >= 1" \
    || fail "A's log lacks the sim-remove upload: $(show_log A)"
ok "sim remove on A returned after the daemon uploaded the edit"

insert B sim
has_moved() { cmp -s "$T/A/data/contacts/moved.vcf" "$T/B/data/contacts/moved.vcf"; }
wait_for 20 has_moved || fail "B did not download after sim insert: $(show_log B)"
same_tree A B contacts
log_has B "e['kind'] == 'start' and e['action'] == 'download' and e['trigger'] == 'sim-insert'" \
    || fail "B's log lacks the sim-insert download: $(show_log B)"
ok "sim insert on B: B downloaded the edit by itself, byte-identical"

# ------------------------------------------------------------ battery low
items1=$(hub_items)
put B contacts battery.vcf "FN:Written on B"
# Let B's daemon see the edit first: with nothing pending, a low battery
# has nothing to upload.
wait_for 20 log_has B "e['kind'] == 'event' and e['text'].startswith('data changed')" \
    || fail "B did not notice the edit: $(show_log B)"
battery "$T/psB" 9 Discharging
wait_for 20 log_has B "e['kind'] == 'done' and e['trigger'] == 'battery-low' and e['action'] == 'upload' and e['result'] == 'ok'" \
    || fail "no upload on a low battery: $(show_log B)"
[ "$(hub_items)" = $((items1 + 1)) ] || fail "the hub lacks battery.vcf"
ss --home "$T/B" log | grep -q "upload ok .*battery-low" \
    || fail "log text lacks battery-low: $(ss --home "$T/B" log)"
ok "battery below the level with a pending edit: B uploaded without a command"

# ---------------------------------------------------- after-update debounce
battery "$T/psB" 80 Charging
ss --home "$T/B" policy set sync.debounce_seconds 1 >/dev/null || fail "set debounce"
ss --home "$T/B" policy set sync.after_update on >/dev/null || fail "set after_update"
log_has B "e['kind'] == 'event' and 'sync.after_update on' in e['text']" \
    || fail "the daemon did not take the new policy: $(show_log B)"
items2=$(hub_items)
put B contacts later.vcf "FN:Uploaded after the debounce"
wait_for 20 log_has B "e['kind'] == 'done' and e['trigger'] == 'after-update' and e['result'] == 'ok'" \
    || fail "no after-update upload: $(show_log B)"
[ "$(hub_items)" = $((items2 + 1)) ] || fail "the hub lacks later.vcf"
ok "after-update (1 s debounce) uploaded an edit by itself"

# ------------------------------------------------------------ confirmation
ss --home "$T/B" policy set sync.confirm on >/dev/null || fail "set confirm"
items3=$(hub_items)
put B contacts asked.vcf "FN:Uploaded once the user said yes"
asked() { ss --home "$T/B" notices | grep -q "confirm sync: the daemon would upload"; }
wait_for 20 asked || fail "no question as a notice: $(ss --home "$T/B" notices) $(show_log B)"
log_has B "e['kind'] == 'ask' and e['trigger'] == 'after-update'" || fail "ask not logged"
[ "$(hub_items)" = "$items3" ] || fail "uploaded before the answer"
ss --home "$T/B" policy confirm yes >"$T/confirm.out" || fail "confirm: $(cat "$T/confirm.out")"
hub_has_asked() { [ "$(hub_items)" = $((items3 + 1)) ]; }
wait_for 20 hub_has_asked || fail "no upload after yes: $(show_log B)"
expect_exit 3 ss --home "$T/B" policy confirm yes
ok "sync.confirm: the question became a notice, the upload waited for yes"

# ------------------------------------------- a limit, then a continuation
ss --home "$T/B" policy set sync.confirm off >/dev/null || fail "set confirm off"
ss --home "$T/B" policy set sync.after_update off >/dev/null || fail "set after_update"
ss --home "$T/B" policy set upload.max_bytes 1k >/dev/null || fail "set max_bytes"
items4=$(hub_items)
mkdir -p "$T/B/data/archive"
head -c 60000 /dev/urandom >"$T/B/data/archive/photo.bin"
ss --home "$T/B" policy run upload >"$T/run.out" || fail "policy run: $(cat "$T/run.out")"
wait_for 20 log_has B "e['kind'] == 'done' and e['trigger'] == 'command' and e['result'] == 'partial'" \
    || fail "no partial upload at the limit: $(show_log B)"
wait_for 20 log_has B "e['kind'] == 'done' and e['trigger'] == 'continue' and e['result'] == 'ok'" \
    || fail "the partial upload was not continued: $(show_log B)"
[ "$(hub_items)" = $((items4 + 1)) ] || fail "the hub lacks photo.bin"
[ "$(pending_up B)" = 0 ] || fail "B has pending changes after the continuation"
ss --home "$T/B" policy set upload.max_bytes 0 >/dev/null || fail "unset max_bytes"
ok "policy run upload: stopped at upload.max_bytes, continued by itself, all uploaded"

# ------------------------------------------------------- a stranger's SIM
new_sim other 44123000961
insert A other
foreign() { log_has A "e['kind'] == 'event' and 'another subscriber' in e['text']"; }
wait_for 20 foreign || fail "A took another subscriber's SIM: $(show_log A)"
ss --home "$T/A" sim remove >"$T/rm2.out" 2>&1 || fail "sim remove of a foreign SIM"
grep -q "nothing to upload" "$T/rm2.out" || fail "foreign SIM removal: $(cat "$T/rm2.out")"
log_has A "e['kind'] == 'start' and e['trigger'] == 'sim-insert'" \
    && fail "A synced with another subscriber's SIM: $(show_log A)"
ok "another subscriber's SIM: no sync, and sim remove does not wait"

# ----------------------------------------------------------- log as JSON
ss --home "$T/B" --json log >"$T/log.json" || fail "log --json"
python3 - "$T/log.json" <<'EOF' || fail "log --json: $(cat "$T/log.json")"
import json, sys
entries = json.load(open(sys.argv[1]))["entries"]
done = [e for e in entries if e["kind"] == "done"]
assert {"sim-insert", "battery-low", "after-update", "command", "continue"} <= {e["trigger"] for e in done}, done
for e in done:
    assert e["result"] in ("ok", "partial", "failed"), e
    assert e["time_ms"] > 0 and e["triggers"] and e["action"], e
assert any(e["recv_items"] >= 1 for e in done if e["trigger"] == "sim-insert"), done
assert any(e["kind"] == "start" and e["text"] for e in entries), entries
EOF
ok "log --json parses and holds the decisions with their results"

# The follower printed, one JSON object per line, what came after it began.
following() { grep -q '"trigger":"continue"' "$T/follow.out"; }
wait_for 10 following || fail "log --follow: $(cat "$T/follow.out" "$T/follow.err")"
kill "$FOLLOW"; wait "$FOLLOW" 2>/dev/null
python3 - "$T/follow.out" "$T/log.json" <<'EOF' || fail "log --follow output: $(cat "$T/follow.out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
whole = json.load(open(sys.argv[2]))["entries"]
assert lines == whole[:len(lines)], (lines, whole)
assert any(e["kind"] == "done" and e["trigger"] == "continue" for e in lines)
EOF
ok "log --follow printed the decisions as they came"
stop_daemons
