#!/usr/bin/env bash
# The digests casfs computes equal those of an independent encoder: protoc
# --encode with our .proto, hashed by b3sum, for every directory of the
# generated tree and of a real one.
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C

"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"
mkdir -p "$TMP/real"
cp -a /usr/include/linux "$TMP/real/"
for tree in tree real; do
        "$CASFS" import --name "$tree" "$TMP/$tree" >/dev/null || fail "import $tree"
        python3 "$SOURCE_ROOT/tests/cli/crosscheck.py" "$TMP/$tree" "$SOURCE_ROOT/proto" > "$TMP/$tree.want" ||
                fail "independent encoder on $tree"
        n=0
        while IFS=$'\t' read -r want rel; do
                p=$tree${rel#.}
                got=$("$CASFS" stat "$p" | sed -n 's/^digest: //p')
                check_eq "digest of $p" "$got" "$want"
                n=$((n + 1))
        done < "$TMP/$tree.want"
        check "$tree: some directories compared" test "$n" -gt 1
        check_eq "$tree: root digest" "$("$CASFS" roots | awk -F'\t' -v t="$tree" '$1 == t {print $3}')" "$(tail -n 1 "$TMP/$tree.want" | cut -f1)"
done
finish
