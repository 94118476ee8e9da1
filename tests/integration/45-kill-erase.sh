#!/usr/bin/env bash
# Kill loop, collective erase: each round terminal E (same home, same
# terminal ID) is set up, edits files, and erases itself; the erase is
# SIGKILLed at random moments and started again until it completes.
# After every kill: before the marker E is intact; with the marker the hub
# already has every edit of E (witness W gets them). A kill between the
# hub forgetting E and the marker leaves an intact E the hub no longer
# knows: the next plain erase finishes it (nothing changed since the hub's
# acknowledgement). After every round E's home holds nothing of the node
# and W has all of E's edits. W then deletes the round before's edits, so
# what a new E downloads before erasing (erase syncs both ways) stays the
# same size round after round instead of growing with every round.
# Each round's E is a new replica (a new store), and a subscriber's
# knowledge keeps one entry for every replica that ever made a change, up
# to 4,096 (vv.h): every 1,000 rounds the loop moves on to a fresh
# subscriber (a new SIM and witness), far below that limit.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/killlib.sh"

ROUNDS_PER_SUBSCRIBER=${ROUNDS_PER_SUBSCRIBER:-1000}
subscribers=0
new_subscriber() {
    subscribers=$((subscribers + 1))
    rm -rf "$T/W" "$T/sim.sim" "$T/sim.sim.lock"
    new_sim sim $((44123000959 + subscribers))
    new_terminal W; insert W sim; register W
    for i in $(seq 1 40); do put W contacts "w$i.vcf" "BEGIN:VCARD w$i"; done
    sync_ok W
}

start_hub
new_subscriber
has_edits() { # has_edits NAME ROUND: NAME's folders hold round ROUND's files
    for i in 1 2 3; do
        [ "$(cat "$T/$1/data/contacts/e$2-$i.vcf" 2>/dev/null)" = "BEGIN:VCARD e$2-$i" ] || return 1
    done
}
kill_calibrate "$T/W"
round=0
unreg=0
while kills_wanted; do
    round=$((round + 1))
    [ $((round % ROUNDS_PER_SUBSCRIBER)) != 1 ] || [ $round = 1 ] || new_subscriber
    rm -rf "$T/E"
    new_terminal E; insert E sim; register E
    for i in 1 2 3; do put E contacts "e$round-$i.vcf" "BEGIN:VCARD e$round-$i"; done
    while ! killed_run ss --home "$T/E" erase; do
        if [ -e "$T/E/erase.pending" ]; then
            sync_ok W
            has_edits W $round || fail "after kill $KILLED the wipe began but the hub lacks E's edits"
        elif [ -e "$T/E/config" ]; then
            has_edits E $round || fail "after kill $KILLED, before the marker, E lost files"
            [ -e "$T/E/erase.unregistering" ] && unreg=$((unreg + 1))
        else
            break # killed after the wipe had finished
        fi
    done
    for f in config node.key datakey.box store erase.pending data/contacts; do
        [ ! -e "$T/E/$f" ] || fail "round $round: $f left after the erase"
    done
    sync_ok W
    has_edits W $round || fail "round $round: W lacks E's edits"
    rm -f "$T/W/data/contacts/e$((round - 1))-"*.vcf
    sync_ok W
done
ok "$KILLED kills over $round rounds, $subscribers subscriber(s) ($(kill_summary); $unreg kills after asking the hub to forget E, finished by a plain erase): never a wipe before the hub had everything"
