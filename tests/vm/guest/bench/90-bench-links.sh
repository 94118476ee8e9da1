#!/bin/sh
# Benchmark (bench/bench_vm_links.sh runs it; not part of the test run):
# bytes on the wire and time for syncing 1,000 contacts from one handset
# to another (initial), then 10 edited contacts, over RFCOMM between two
# emulated controllers and over TCP on the guest's loopback, next to the
# bytes of the same contacts as vCards (what a PBAP or OBEX transfer would
# carry). Prints one "bench: LINK STEP items=N wire=BYTES seconds=S" line
# per sync and "bench: vcard STEP bytes=B".
. /lib/vm/simsync.sh
. /lib/vm/bt.sh
trap 'stop_bg; bt_stop' EXIT
N=${BENCH_CONTACTS:-1000}

bt_start
bt_up
start_hub
new_sim sim 440101234567890
for t in A B C D; do terminal $t sim; done

# contacts NAME: N vCards of about 300 bytes, as a phone book holds
contacts() {
    mkdir -p "$T/$1/data/contacts"
    i=0
    while [ $i -lt "$N" ]; do
        printf 'BEGIN:VCARD\r\nVERSION:3.0\r\nN:Person%04d;Given%04d;;;\r\nFN:Given%04d Person%04d\r\nTEL;TYPE=CELL:+4479%08d\r\nTEL;TYPE=HOME:+44207%07d\r\nEMAIL;TYPE=INTERNET:given%04d.person%04d@example.org\r\nADR;TYPE=HOME:;;%d High Street;Springfield;;%05d;UK\r\nORG:Company %d Ltd\r\nNOTE:met at event %d\r\nEND:VCARD\r\n' \
            $i $i $i $i $((i * 7919)) $((i * 31)) $i $i $((i % 200 + 1)) $((10000 + i)) $((i % 97)) $((i % 13)) \
            >"$T/$1/data/contacts/c$i.vcf"
        i=$((i + 1))
    done
}
# edit NAME: change 10 contacts
edit() {
    i=0
    while [ $i -lt 10 ]; do
        sed -i "s/^NOTE:met at event [0-9]*/NOTE:edited on $1 ($i)/" \
            "$T/$1/data/contacts/c$((i * 37)).vcf"
        i=$((i + 1))
    done
}
vcard_bytes() { cat "$@" | wc -c; }
report() { # report LINK STEP: from $T/sync.out
    w_s=$(sed -n 's/.*"wire_sent":\([0-9]*\).*/\1/p' "$T/sync.out")
    w_r=$(sed -n 's/.*"wire_recv":\([0-9]*\).*/\1/p' "$T/sync.out")
    hs=$(sed -n 's/.*"handshake_bytes":\([0-9]*\).*/\1/p' "$T/sync.out")
    sec=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$T/sync.out")
    items=$(sed -n 's/.*"sent_items":\([0-9]*\).*/\1/p' "$T/sync.out")
    echo "bench: $1 $2 items=$items wire=$((w_s + w_r)) handshake=$hs seconds=$sec"
}

pair_listen A rfcomm:3
ss --home "$T/B" pair --peer "rfcomm:$ADDR_A:3" --yes >"$T/pair-B.out" 2>&1 ||
    { cat "$T"/pair-*.out; fail "B did not pair"; }
pair_end 0
pair_listen C 127.0.0.1:7401
ss --home "$T/D" pair --peer 127.0.0.1:7401 --yes >"$T/pair-D.out" 2>&1 ||
    { cat "$T"/pair-*.out; fail "D did not pair"; }
pair_end 0
bg simsync --home "$T/A" listen rfcomm:4
bg simsync --home "$T/C" listen 127.0.0.1:7402
sleep 1

contacts B
contacts D
echo "bench: vcard initial bytes=$(vcard_bytes "$T"/B/data/contacts/*.vcf)"
sync_ok B --peer "rfcomm:$ADDR_A:4"
report rfcomm initial
sync_ok D --peer 127.0.0.1:7402
report tcp initial
edit B
edit D
i=0; files=
while [ $i -lt 10 ]; do files="$files $T/B/data/contacts/c$((i * 37)).vcf"; i=$((i + 1)); done
echo "bench: vcard edit10 bytes=$(vcard_bytes $files)"
sync_ok B --peer "rfcomm:$ADDR_A:4"
report rfcomm edit10
sync_ok D --peer 127.0.0.1:7402
report tcp edit10
for t in A C; do
    [ "$(ls "$T/$t/data/contacts" | wc -l)" = "$N" ] || fail "$t has $(ls "$T/$t/data/contacts" | wc -l) contacts"
done
cmp "$T/A/data/contacts/c37.vcf" "$T/B/data/contacts/c37.vcf" || fail "edit lost over RFCOMM"
ok "1,000 contacts and 10 edits over RFCOMM and TCP"
