#!/usr/bin/env bash
# casfs ls, cat and stat against the imported generated tree, entry by entry.
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C

"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"
"$CASFS" import --name t "$TMP/tree" >/dev/null || fail "import"
cd "$TMP/tree"

while IFS= read -r -d '' p; do
        p=${p#./}
        st=$("$CASFS" stat "t/$p") || { fail "stat t/$p"; continue; }
        type=$(sed -n 's/^type: //p' <<<"$st")
        size=$(sed -n 's/^size: //p' <<<"$st")
        if [ -L "$p" ]; then
                check_eq "type of $p" "$type" symlink
                check_eq "target of $p" "$(sed -n 's/^target: //p' <<<"$st")" "$(readlink "$p")"
                check_eq "size of $p" "$size" "$(readlink "$p" | tr -d '\n' | wc -c)"
        elif [ -f "$p" ]; then
                check_eq "type of $p" "$type" file
                check_eq "size of $p" "$size" "$(stat -c %s "./$p")"
                x=no; [ -x "$p" ] && x=yes
                check_eq "executable bit of $p" "$(sed -n 's/^executable: //p' <<<"$st")" "$x"
                check_eq "digest of $p" "$(sed -n 's/^digest: //p' <<<"$st")" "blake3-$(b3sum --no-names "./$p" | xxd -r -p | base64)"
                check "cat of $p" cmp -s <("$CASFS" cat "t/$p") "./$p"
        elif [ -d "$p" ]; then
                check_eq "type of $p" "$type" directory
                check_eq "size of $p" "$size" "$(find "$p" -mindepth 1 | wc -l)"
                # ls lists names in bytewise order, with types
                want=$(find "$p" -mindepth 1 -maxdepth 1 -printf '%y %f\n' | sort -k2 | awk '{print $1}' | tr -d '\n')
                got=$("$CASFS" ls "t/$p" | cut -f1 | tr x f | tr -d '\n')
                check_eq "ls types of $p" "$got" "$want"
                want=$(find "$p" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort)
                got=$("$CASFS" ls "t/$p" | cut -f4 | sed 's/ -> .*//')
                check_eq "ls names of $p" "$got" "$want"
        fi
done < <(find . -mindepth 1 -print0)

check_eq "ls of the top" "$("$CASFS" ls t | wc -l)" "$(find . -mindepth 1 -maxdepth 1 | wc -l)"
check_eq "ls of a file" "$("$CASFS" ls t/hello.txt | cut -f1,2,4)" "f	6	hello.txt"
check_eq "ls of a symlink" "$("$CASFS" ls t/rel-link | cut -f1,4)" "l	rel-link -> hello.txt"
check_eq "cat of an empty file" "$("$CASFS" cat t/empty-file | wc -c)" 0
check_fails "cat of a directory" "$CASFS" cat t/deep
check_fails "cat of a missing entry" "$CASFS" cat t/nope
check_fails "ls of a missing root" "$CASFS" ls nope
check_fails "ls through a file" "$CASFS" ls t/hello.txt/x
check_fails "stat of a root-name prefix" "$CASFS" stat x
check_fails "stat of a missing store" env CASFS_STORE=$TMP/none "$CASFS" stat t
finish
