#!/usr/bin/env bash
# fsck finds a flipped byte in a blob, a missing directory and a corrupt one,
# and a damaged root record; gc keeps what roots reach, removes the rest, and
# waits for imports.
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C
STORE_TOOL=${STORE_TOOL:?}

"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"
"$CASFS" import --name t "$TMP/tree" >/dev/null
check "fsck of a fresh store" "$CASFS" fsck

# a flipped byte in a blob
blob=$("$CASFS" stat t/big.bin | sed -n 's/^digest: //p')
path=$("$STORE_TOOL" "$CASFS_STORE" blob-path "$blob")
cp -p "$path" "$TMP/saved-blob"
chmod u+w "$path"
flip_byte "$path" 4242 # a byte of random content: changed whatever it was
out=$("$CASFS" fsck)
rc=$?
check_eq "fsck exit status on a corrupt blob" "$rc" 1
check "fsck names the corrupt blob" grep -qx "corrupt blob $blob" <<<"$out"
check_fails "cat refuses the corrupt blob" "$CASFS" cat t/big.bin
check_eq "cat writes nothing of it" "$("$CASFS" cat t/big.bin 2>/dev/null | wc -c)" 0
check "cat of an intact file still works" cmp -s <("$CASFS" cat t/hello.txt) "$TMP/tree/hello.txt"
cp -p "$TMP/saved-blob" "$path"
check "fsck clean again" "$CASFS" fsck

# a truncated blob and a missing blob
truncate -s 10 "$path"
check "fsck reports the truncated blob" grep -qx "corrupt blob $blob" <<<"$("$CASFS" fsck)"
rm -f "$path"
check "fsck reports the missing blob" grep -qx "missing blob $blob" <<<"$("$CASFS" fsck)"
check_fails "cat of a missing blob" "$CASFS" cat t/big.bin
cp -p "$TMP/saved-blob" "$path"

# a missing directory
dir=$("$CASFS" stat 't/with space' | sed -n 's/^digest: //p')
"$STORE_TOOL" "$CASFS_STORE" del-dir "$dir"
out=$("$CASFS" fsck)
rc=$?
check_eq "fsck exit status on a missing directory" "$rc" 1
check "fsck names the missing directory" grep -qx "missing directory $dir (root t)" <<<"$out"
check_fails "ls of the missing directory" "$CASFS" ls 't/with space'
check_fails "gc refuses a damaged store" "$CASFS" gc
# a corrupt record under its digest (bytes that do not hash to it)
"$STORE_TOOL" "$CASFS_STORE" put-dir "$dir" 0a0161
check "fsck names the corrupt directory" grep -qx "corrupt directory $dir" <<<"$("$CASFS" fsck)"
check_fails "ls of the corrupt directory" "$CASFS" ls 't/with space'
"$STORE_TOOL" "$CASFS_STORE" del-dir "$dir"
"$CASFS" import --name t "$TMP/tree" >/dev/null    # re-import repairs
check "fsck clean after re-import" "$CASFS" fsck

# a damaged root record: under the key u, a Node naming the root t
# (symlink { name: "t" target: "x" }): left out of the roots, named by fsck;
# gc refuses (what the record held is unknown) until it is removed
"$STORE_TOOL" "$CASFS_STORE" put-root u 1a060a0174120178
check_eq "roots leaves it out" "$("$CASFS" roots | cut -f1 | tr '\n' ' ')" "t "
out=$("$CASFS" fsck)
rc=$?
check_eq "fsck exit status on a damaged root record" "$rc" 1
check "fsck names the damaged root record" grep -qx "corrupt root record u" <<<"$out"
check "and counts the valid roots only" grep -q "^fsck: 1 roots, " <<<"$out"
check_fails "gc refuses while a root record is damaged" "$CASFS" gc
check "rm removes the damaged record" "$CASFS" rm u
check "fsck clean after its removal" "$CASFS" fsck

# gc: two roots sharing content; removing one frees only what is its own
mkdir -p "$TMP/other"
cp "$TMP/tree/hello.txt" "$TMP/other/shared"
head -c 50000 /dev/urandom > "$TMP/other/own"
"$CASFS" import --name other "$TMP/other" >/dev/null
"$CASFS" rm other
check_fails "rm of a missing root" "$CASFS" rm other
out=$("$CASFS" gc)
check "gc reports what it removed" grep -q '^gc: removed 1 blobs (50000 bytes) and 1 directories' <<<"$out"
check "after gc, fsck clean with nothing unreferenced" grep -q "0 problems; 0 unreferenced blobs, 0 unreferenced directories" <<<"$("$CASFS" fsck)"
check "reachable content survives gc" cmp -s <("$CASFS" cat t/hello.txt) "$TMP/tree/hello.txt"
check "reachable large content survives gc" cmp -s <("$CASFS" cat t/big.bin) "$TMP/tree/big.bin"
# importing again what gc removed stores it again (the import cache forgot it)
"$CASFS" import --name other "$TMP/other" >/dev/null
check "re-import after gc restores the blob" cmp -s <("$CASFS" cat other/own) "$TMP/other/own"
check "fsck clean after re-import" "$CASFS" fsck
"$CASFS" rm other
"$CASFS" gc >/dev/null
out=$("$CASFS" gc)
check "a second gc removes nothing" grep -q '^gc: removed 0 blobs (0 bytes) and 0 directories' <<<"$out"

# gc while an import runs: the import's objects survive
mkdir -p "$TMP/many"
for i in $(seq 1 300); do head -c $((i * 997)) /dev/urandom > "$TMP/many/f$i"; done
"$CASFS" import --name many "$TMP/many" >"$TMP/import.out" &
ipid=$!
"$CASFS" gc >/dev/null
wait $ipid
check "concurrent import succeeded" grep -q '^many blake3-' "$TMP/import.out"
check "fsck clean after concurrent gc" "$CASFS" fsck
check "imported file intact after gc" cmp -s <("$CASFS" cat many/f300) "$TMP/many/f300"

finish
