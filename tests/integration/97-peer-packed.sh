#!/usr/bin/env bash
# Packed batches between paired handsets (docs/protocol.md 11.4): two
# terminals of one subscriber pair, one serves, the other brings 1,000
# contacts of about 300 bytes (the generator of the link benchmark,
# tests/vm/guest/bench/90-bench-links.sh) and then edits 10 of them.
# The initial sync must put at most a third of the vCard bytes on the wire
# (both directions, from `sync --json`), the 10-edit sync under 3 KiB with
# the handshake included; both sides end byte for byte equal. A node that
# does not offer packed batches (SIMSYNC_PEER_PACK=0), on either side,
# still syncs, in the plain form.
. "$(dirname "$0")/lib.sh"

BG=
stop_bg() {
    for p in $BG; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    BG=
}
trap 'stop_bg; cleanup' EXIT

N=1000
# contacts NAME: N vCards of about 300 bytes, as a phone book holds
contacts() {
    mkdir -p "$T/$1/data/contacts"
    local i=0
    while [ $i -lt "$N" ]; do
        printf 'BEGIN:VCARD\r\nVERSION:3.0\r\nN:Person%04d;Given%04d;;;\r\nFN:Given%04d Person%04d\r\nTEL;TYPE=CELL:+4479%08d\r\nTEL;TYPE=HOME:+44207%07d\r\nEMAIL;TYPE=INTERNET:given%04d.person%04d@example.org\r\nADR;TYPE=HOME:;;%d High Street;Springfield;;%05d;UK\r\nORG:Company %d Ltd\r\nNOTE:met at event %d\r\nEND:VCARD\r\n' \
            $i $i $i $i $((i * 7919)) $((i * 31)) $i $i $((i % 200 + 1)) $((10000 + i)) $((i % 97)) $((i % 13)) \
            >"$T/$1/data/contacts/c$i.vcf"
        i=$((i + 1))
    done
}
# edit NAME TAG: change the note of 10 contacts
edit() {
    local i=0
    while [ $i -lt 10 ]; do
        sed -i "s/^NOTE:.*\r$/NOTE:edited on $1 ($2 $i)\r/" \
            "$T/$1/data/contacts/c$((i * 37)).vcf"
        i=$((i + 1))
    done
}
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$T/sync.out"; }
wire() { echo $(($(field wire_sent) + $(field wire_recv))); }
# serve [ENV...]: A serves its paired peers; sets SERVE.
serve() {
    stop_bg
    env "$@" "$SIMSYNC" --home "$T/A" serve --listen 127.0.0.1:0 \
        >"$T/serve.out" 2>"$T/serve.err" &
    BG=$!
    SERVE=$(wait_match 10 "$T/serve.out" 's/^Serving paired nodes on \(.*\)\.$/\1/p') \
        || { cat "$T/serve.out" "$T/serve.err" >&2; fail "A did not serve"; }
}

start_hub
new_sim sim 440101234567890
for t in A B; do new_terminal $t; insert $t sim; register $t; done
ss --home "$T/A" pair --listen 127.0.0.1:0 --yes >"$T/pair-A.out" 2>&1 &
PAIR_PID=$!
PAIR_ADDR=$(wait_match 10 "$T/pair-A.out" \
    's/^Waiting for the other node on \([0-9.]*:[0-9]*\): .*/\1/p') \
    || { cat "$T/pair-A.out" >&2; fail "A did not wait for a pairing"; }
ss --home "$T/B" pair --peer "$PAIR_ADDR" --yes >"$T/pair-B.out" 2>&1 \
    || { cat "$T/pair-B.out" >&2; fail "B did not pair"; }
wait "$PAIR_PID" || fail "A did not pair"
serve

contacts B
vcards=$(cat "$T"/B/data/contacts/*.vcf | wc -c)
sync_ok B --json --peer "$SERVE"
w=$(wire)
[ "$(field sent_items)" = "$N" ] || fail "sent $(field sent_items) items, not $N: $(cat "$T/sync.out")"
[ "$(field packed_batches)" -gt 0 ] || fail "the batches were not packed: $(cat "$T/sync.out")"
[ $((w * 3)) -le "$vcards" ] \
    || fail "initial sync: $w wire bytes for $vcards vCard bytes (over a third)"
same_tree A B contacts
ok "1,000 contacts: $w wire bytes for $vcards vCard bytes ($((w * 100 / vcards))%), packed"

edit B one
sync_ok B --json --peer "$SERVE"
w=$(wire)
total=$((w + $(field handshake_bytes)))
[ "$(field sent_items)" = 10 ] || fail "sent $(field sent_items) items, not 10"
[ "$total" -lt 3072 ] || fail "10-edit sync: $total bytes with the handshake (not under 3 KiB)"
same_tree A B contacts
ok "10 edited contacts: $total bytes on the wire with the handshake"

# A node without packed batches, serving or connecting: the plain form.
serve SIMSYNC_PEER_PACK=0
edit B two
sync_ok B --json --peer "$SERVE"
[ "$(field packed_batches)" = 0 ] || fail "a server without packing got packed batches"
[ "$(field sent_items)" = 10 ] || fail "sent $(field sent_items) items, not 10"
plain=$(($(wire) + $(field handshake_bytes)))
[ "$plain" -gt "$total" ] || fail "the plain form ($plain) is not larger than the packed one ($total)"
same_tree A B contacts
serve
edit A three
SIMSYNC_PEER_PACK=0 sync_ok B --json --peer "$SERVE"
[ "$(field packed_batches)" = 0 ] || fail "a client without packing got packed batches"
[ "$(field recv_items)" = 10 ] || fail "received $(field recv_items) items, not 10"
same_tree A B contacts
ok "a peer without packed batches on either side syncs in the plain form ($plain bytes for 10 edits)"
