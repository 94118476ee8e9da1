#!/usr/bin/env bash
# `simsync status` explains sync health: what is pending each way, what
# keeps the terminal from being in sync and backed up (no SIM, edits not
# uploaded, files in classes it does not sync, held-back deletions, no
# backup, the daemon's waits), the last sync and the newest backup.
. "$(dirname "$0")/lib.sh"

DAEMON=
trap '[ -n "$DAEMON" ] && { kill "$DAEMON"; wait "$DAEMON"; } 2>/dev/null; cleanup' EXIT

# holds NAME PYTHON-EXPR: is EXPR true, with h = the "health" object and
# s = the whole `status --json` of NAME? health: the same, or fail.
holds() {
    ss --home "$T/$1" --json status >"$T/status.json" 2>"$T/status.err" \
        || return 1
    python3 - "$T/status.json" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
h = s["health"]
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}
health() {
    holds "$@" || fail "status $1: $2: $(cat "$T/status.json" "$T/status.err")"
}
blocking_has() { health "$1" "any('$2' in r for r in h['blocking'])"; }

start_hub
new_sim sim 44123000960
new_terminal A; insert A sim; register A
ss --home "$T/A" classes contacts,pim,archive >/dev/null || fail "classes"

# Fresh: never synced, no backup, a file in a class it does not sync.
put A rights licence.key "k1"
put A contacts ana.vcf "BEGIN:VCARD ana"
health A "h['sim_ok'] and h['pending_up'] == 1 and h['unsynced_files'] == 1"
blocking_has A "1 local change is not on the hub yet"
blocking_has A "1 file in rights, which this terminal does not sync"
blocking_has A "never completed a sync"
blocking_has A "no backup generation is known here"
ss --home "$T/A" status >"$T/status.txt" || fail "status text"
grep -q "^Not complete:" "$T/status.txt" || fail "text: $(cat "$T/status.txt")"
grep -q "Last sync with the hub: never" "$T/status.txt" || fail "text: $(cat "$T/status.txt")"
ok "a fresh terminal: the unscanned edit, the unsynced class, no sync, no backup"

sync_ok A
ss --home "$T/A" backup now >/dev/null || fail "backup now"
rm "$T/A/data/rights/licence.key"
health A "h['pending_up'] == 0 and h['backup_gen'] == 1 and h['blocking'] == [] and s['last_sync_ms'] > 0"
health A "s['peers'][0]['peer'] == 'hub' and s['peers'][0]['pending_up'] == 0"
ss --home "$T/A" status | grep -q "^In sync: the hub has every change made here" \
    || fail "in sync text: $(ss --home "$T/A" status)"
ss --home "$T/A" status | grep -q "^Newest backup: generation 001" \
    || fail "backup line: $(ss --home "$T/A" status)"
ok "after a sync and a backup: nothing blocks, generation 001 shown"

# Many deletions at once are held back by the guard, and status says so.
for i in $(seq 1 12); do put A contacts "c$i.vcf" "BEGIN:VCARD c$i"; done
sync_ok A
rm "$T/A/data/contacts/"c*.vcf
health A "h['guarded'] >= 12"
blocking_has A "not deleted anywhere (too many at once)"
sync_ok A --allow-delete
health A "h['guarded'] == 0 and h['pending_up'] == 0"
ok "held-back deletions are reported until allowed"

# The daemon: running, and why it waits (confirmation asked).
ss --home "$T/A" policy set sync.on_start off >/dev/null || fail "policy"
ss --home "$T/A" policy set sync.after_update on >/dev/null || fail "policy"
ss --home "$T/A" policy set sync.debounce_seconds 1 >/dev/null || fail "policy"
ss --home "$T/A" policy set sync.confirm on >/dev/null || fail "policy"
"$SIMSYNC" --home "$T/A" daemon >"$T/A.daemon" 2>&1 &
DAEMON=$!
for _ in $(seq 1 100); do
    holds A "h['daemon_running']" && break
    sleep 0.1
done
health A "h['daemon_running']"
put A contacts bo.vcf "BEGIN:VCARD bo"
waited=0
for _ in $(seq 1 150); do
    if holds A "h['daemon_waits'] != ''"; then waited=1; break; fi
    sleep 0.1
done
[ "$waited" = 1 ] || fail "no daemon wait reported: $(cat "$T/status.json"); $(ss --home "$T/A" log)"
blocking_has A "the daemon waits:"
blocking_has A "1 local change waits for the hub; the daemon uploads when its policy says"
kill "$DAEMON"; wait "$DAEMON" 2>/dev/null; DAEMON=
health A "not h['daemon_running']"
ok "the daemon's question shows as what blocks completion"

ss --home "$T/A" sim remove >/dev/null || fail "sim remove"
health A "not h['sim_ok']"
blocking_has A "nothing syncs: no SIM inserted"
ok "without the SIM nothing syncs, and status says so"
