#!/usr/bin/env bash
# casfs import: output format, node types, deduplication, replacing roots,
# re-import of unchanged and changed trees, several paths at once.
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C

"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"

out=$("$CASFS" import --name tree "$TMP/tree") || fail "import of the generated tree"
check "import prints 'NAME DIGEST'" grep -Eq '^tree blake3-[A-Za-z0-9+/]{43}=$' <<<"$out"
digest=${out#tree }

# the root is registered with its type, digest and entry count
line=$("$CASFS" roots | grep "^tree	")
entries=$(find "$TMP/tree" -mindepth 1 | wc -l)
check_eq "roots line" "$line" "tree	directory	$digest	$entries"

# deduplication: one blob per distinct content
distinct=$(find "$TMP/tree" -type f -exec b3sum --no-names {} + | sort -u | wc -l)
stored=$(find "$CASFS_STORE/blobs" -path "$CASFS_STORE/blobs/tmp" -prune -o -type f -name '????????????????????????????????????????????????????????????????' -print | wc -l)
check_eq "one blob per distinct content" "$stored" "$distinct"
# and an outboard beside each one larger than 1 MiB
large=$(find "$TMP/tree" -type f -size +1048576c -exec b3sum --no-names {} + | sort -u | wc -l)
outboards=$(find "$CASFS_STORE/blobs" -type f -name '*.outboard' | wc -l)
check "the tree has a file over 1 MiB" test "$large" -gt 0
check_eq "one outboard per distinct content over 1 MiB" "$outboards" "$large"

# a second import of the unchanged tree gives the same digest and stores nothing new
out2=$("$CASFS" import --name tree "$TMP/tree")
check_eq "re-import digest" "$out2" "$out"
check_eq "re-import stores nothing" "$(find "$CASFS_STORE/blobs" -path "$CASFS_STORE/blobs/tmp" -prune -o -type f -print | wc -l)" "$((stored + outboards))"

# the same tree into a fresh store, without the cache, gives the same digest
out3=$(CASFS_STORE=$TMP/store2 "$CASFS" import --no-cache --threads 1 --name tree "$TMP/tree")
check_eq "digest independent of store and threads" "$out3" "$out"

# a changed file changes the digest; the new root replaces the old one
sleep 0.01
printf 'changed\n' >> "$TMP/tree/hello.txt"
out4=$("$CASFS" import --name tree "$TMP/tree")
check "changed tree, changed digest" test "$out4" != "$out"
check_eq "roots shows the replacement" "$("$CASFS" roots | grep -c '^tree	')" 1
check_eq "replaced root's content" "$("$CASFS" cat tree/hello.txt)" "$(cat "$TMP/tree/hello.txt")"
out5=$(CASFS_STORE=$TMP/store3 "$CASFS" import --no-cache --name tree "$TMP/tree")
check_eq "cache gives what a fresh read gives" "$out4" "$out5"

# a file changed with the same size and a restored mtime is still noticed (ctime differs)
mt=$(stat -c %y "$TMP/tree/big.bin")
printf 'X' | dd of="$TMP/tree/big.bin" bs=1 seek=100 conv=notrunc status=none
touch -d "$mt" "$TMP/tree/big.bin"
out6=$("$CASFS" import --name tree "$TMP/tree")
out7=$(CASFS_STORE=$TMP/store4 "$CASFS" import --no-cache --name tree "$TMP/tree")
check_eq "same size, same mtime, new content" "$out6" "$out7"

# roots of each type; the default name is the last path component
out=$("$CASFS" import "$TMP/tree/rel-link")
check_eq "symlink root, not followed" "$out" "rel-link symlink hello.txt"
out=$("$CASFS" import "$TMP/tree/script.sh")
check_eq "file root digest is the blob's" "$out" "script.sh blake3-$(b3sum --no-names "$TMP/tree/script.sh" | xxd -r -p | base64)"
check_eq "file root is executable" "$("$CASFS" stat script.sh | grep executable)" "executable: yes"
out=$("$CASFS" import "$TMP/tree/empty-dir/")
check_eq "empty directory root (trailing slash)" "$out" "empty-dir blake3-rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI="
out=$(cd "$TMP/tree/deep" && "$CASFS" import .)
check "'.' is named after the folder" grep -q '^deep blake3-' <<<"$out"

# several paths: one line each, in order
out=$("$CASFS" import "$TMP/tree/hello.txt" "$TMP/tree/empty-file" "$TMP/tree/dangling-link")
check_eq "several paths" "$(cut -d' ' -f1,2 <<<"$out" | tr '\n' ,)" "hello.txt blake3-$(b3sum --no-names "$TMP/tree/hello.txt" | xxd -r -p | base64),empty-file blake3-rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI=,dangling-link symlink,"

# usage errors are exit status 2
EXPECT_RC=2 check_fails "--name with two paths" "$CASFS" import --name x "$TMP/tree/hello.txt" "$TMP/tree/big.bin"
EXPECT_RC=2 check_fails "no path" "$CASFS" import
EXPECT_RC=2 check_fails "unknown option" "$CASFS" import --bogus "$TMP/tree"
EXPECT_RC=2 check_fails "unknown command" "$CASFS" frobnicate
check "help" "$CASFS" import --help
check "version" "$CASFS" --version
check "fsck after all that" "$CASFS" fsck

finish
