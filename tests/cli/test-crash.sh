#!/usr/bin/env bash
# Crash safety: casfs import and casfs gc killed (SIGKILL) at many random
# moments. After each kill the store opens, fsck finds no corruption
# (unreferenced objects are fine) and every root registered before is intact;
# then the import completes with the digest a clean import gives.
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C
ROUNDS=${CRASH_ROUNDS:-25}

"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/base"
mkdir -p "$TMP/victim"
for i in $(seq 1 150); do
        mkdir -p "$TMP/victim/d$((i % 13))"
        head -c $(((i * 7919) % 600000)) /dev/urandom > "$TMP/victim/d$((i % 13))/f$i"
done
cp -a "$TMP/base" "$TMP/victim/base-copy"
want=$(CASFS_STORE=$TMP/reference "$CASFS" import --name victim "$TMP/victim")
base=$("$CASFS" import --name base "$TMP/base")

intact() {
        local what=$1 out
        out=$("$CASFS" fsck 2>&1)
        check "fsck finds no corruption ($what)" grep -q ' 0 problems;' <<<"$out"
        check_eq "base root unchanged ($what)" "$("$CASFS" roots | awk -F'\t' '$1 == "base" {print $1 " " $3}')" "$base"
        check "base content intact ($what)" cmp -s <("$CASFS" cat base/big.bin) "$TMP/base/big.bin"
}

for round in $(seq 1 "$ROUNDS"); do
        # a fresh cache each round, so that every kill lands in real work
        "$CASFS" import --no-cache --name victim "$TMP/victim" >/dev/null 2>&1 &
        pid=$!
        sleep "0.$(printf '%03d' $((RANDOM % 400)))"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        intact "import killed, round $round"
        # whatever the victim root is now, it is either absent or complete
        if "$CASFS" stat victim >/dev/null 2>&1; then
                check_eq "victim root complete when present (round $round)" "victim $("$CASFS" stat victim | sed -n 's/^digest: //p')" "$want"
        fi
        "$CASFS" rm victim 2>/dev/null
done

out=$("$CASFS" import --name victim "$TMP/victim")
check_eq "import after the kills gives the clean digest" "$out" "$want"
check "victim content after the kills" cmp -s <("$CASFS" cat victim/d5/f5) "$TMP/victim/d5/f5"

# gc killed midway: garbage to collect, then kill at random moments
for round in $(seq 1 $((ROUNDS / 2))); do
        "$CASFS" import --name victim "$TMP/victim" >/dev/null
        "$CASFS" rm victim
        "$CASFS" gc >/dev/null 2>&1 &
        pid=$!
        sleep "0.0$((RANDOM % 10))"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        intact "gc killed, round $round"
done
out=$("$CASFS" gc)
check "gc completes after the kills" grep -q '^gc: removed' <<<"$out"
check "nothing unreferenced after the last gc" grep -q '0 unreferenced blobs, 0 unreferenced directories' <<<"$("$CASFS" fsck)"
intact "after all"
finish
