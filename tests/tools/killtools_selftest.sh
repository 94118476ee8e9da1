#!/usr/bin/env bash
# killtools_selftest.sh -- check the kill loops' own tools: killrun kills a
# command that outlives its delay and reports 137, passes on the exit code
# and duration of one that ends first, refuses a bad delay; treesum lists
# regular files by path with their digests, leaves out temporaries and
# symlinks, and its --known check fails on a half-written or foreign file.
# The checks the kill loops make after every kill are only as good as
# these two, so each must be able to fail.
#
# Usage: killtools_selftest.sh PATH/TO/killrun PATH/TO/treesum
set -euo pipefail

KILLRUN=${1:?usage: killtools_selftest.sh KILLRUN TREESUM}
TREESUM=${2:?usage: killtools_selftest.sh KILLRUN TREESUM}
T=$(mktemp -d /tmp/killtools-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
status() { local rc=0; "$@" >"$T/out" 2>"$T/err" || rc=$?; echo $rc; }

# ------------------------------------------------------------- killrun
# A 100 ms delay against a 30 s sleep: killed whatever the load.
[ "$(status "$KILLRUN" --time-file "$T/t" 100000 sleep 30)" = 137 ] \
    || fail "a sleep outliving its delay was not killed: $(cat "$T/err")"
read -r us <"$T/t"
[ "$us" -ge 100000 ] && [ "$us" -lt 30000000 ] \
    || fail "a killed run reported $us us, not between the delay and the sleep"
ok "killed after its delay: exit 137, $us us"

[ "$(status "$KILLRUN" --time-file "$T/t" 60000000 sh -c 'echo hi; exit 3')" = 3 ] \
    || fail "the exit code of a command that ended first was not passed on"
[ "$(cat "$T/out")" = hi ] || fail "the command's output did not reach stdout"
read -r us <"$T/t"
[ "$us" -lt 60000000 ] || fail "a run that ended first reported $us us"
[ "$(status "$KILLRUN" 60000000 true)" = 0 ] || fail "true did not exit 0"
ok "a command that ends first keeps its exit code and output"

[ "$(status "$KILLRUN" 60000000 sh -c 'kill -TERM $$')" = 143 ] \
    || fail "a command ended by SIGTERM was not reported as 143"
ok "a signal other than the kill is reported as 128 + signal"

for bad in x -5 1.5 7200000000; do
    [ "$(status "$KILLRUN" "$bad" true)" = 2 ] || fail "delay '$bad' was taken"
    grep -q 'DELAY_US must be' "$T/err" || fail "no clear message for delay '$bad'"
done
[ "$(status "$KILLRUN" 1000)" = 2 ] || fail "a missing command was taken"
[ "$(status "$KILLRUN" 60000000 "$T/no-such-program")" = 126 ] \
    || fail "a command that cannot start did not give 126"
ok "bad delays and a missing command: exit 2; a command that cannot start: 126"

# ------------------------------------------------------------- treesum
d=$T/tree
mkdir -p "$d/b" "$d/a/z"
printf 'one\n' >"$d/b/1.vcf"
printf 'two\n' >"$d/a/z/2.vcf"
printf 'three\n' >"$d/a/3.jpg"
printf 'half' >"$d/a/.simsync-tmp.x"
ln -s 3.jpg "$d/a/link"
"$TREESUM" "$d" >"$T/sums" || fail "treesum failed"
[ "$(cut -c67- "$T/sums" | tr '\n' ' ')" = "./a/3.jpg ./a/z/2.vcf ./b/1.vcf " ] \
    || fail "treesum listed: $(cat "$T/sums")"
[ "$(cut -c1-64 "$T/sums" | sort -u | wc -l)" = 3 ] \
    || fail "three contents did not give three digests: $(cat "$T/sums")"
ok "treesum: regular files by path, temporaries and symlinks left out"

[ "$(status "$TREESUM" --known "$T/sums" "$d")" = 0 ] || fail "a tree is not known to itself"
[ "$(status "$TREESUM" --known "$T/sums" "$T/none")" = 0 ] || fail "a missing tree is not empty"
printf 'tw' >"$d/a/z/2.vcf"  # half-written
[ "$(status "$TREESUM" --known "$T/sums" "$d")" = 1 ] || fail "a half-written file passed"
grep -q '\./a/z/2\.vcf$' "$T/err" || fail "the half-written file was not named: $(cat "$T/err")"
printf 'two\n' >"$d/a/z/2.vcf"
printf 'one\n' >"$d/b/9.vcf"     # a known content at another path
[ "$(status "$TREESUM" --known "$T/sums" "$d")" = 1 ] || fail "a content at a foreign path passed"
rm "$d/b/9.vcf" "$d/b/1.vcf"     # fewer files than known is fine
[ "$(status "$TREESUM" --known "$T/sums" "$d")" = 0 ] || fail "a subset of the known tree failed"
ok "treesum --known: a half-written file or a content at another path fails, a subset passes"

[ "$(status "$TREESUM")" = 2 ] || fail "treesum without a folder was taken"
[ "$(status "$TREESUM" --known "$T/no-such-file" "$d")" = 2 ] || fail "a missing known file was taken"
ok "treesum usage errors: exit 2"
