#!/usr/bin/env bash
# Remote stores over file:// (the object-store layout in a local folder):
# import, copy there and back, ls/cat/stat/rm/fsck on the remote itself, a
# rerun that sends nothing, an interrupted copy that resumes, corruption.
. "$(dirname "$0")/../lib/lib.sh"
export LC_ALL=C
unset CASFS_STORE

"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"
head -c 3000000 /dev/urandom > "$TMP/tree/multi-chunk.bin"   # several chunks
LOCAL=$TMP/local REMOTE=file://$TMP/remote BACK=$TMP/back

"$CASFS" --store "$LOCAL" import --quiet --name t "$TMP/tree" >/dev/null || fail "import"
printf 'single\n' > "$TMP/file.txt"
"$CASFS" --store "$LOCAL" import --quiet --name f "$TMP/file.txt" >/dev/null || fail "import file"
roots=$("$CASFS" --store "$LOCAL" roots)

# copy to the remote and back: the same roots, everything intact
out=$("$CASFS" copy --verbose "$LOCAL" "$REMOTE" 2>"$TMP/err1")
check "copy to file:// succeeds" [ $? -eq 0 ]
check_eq "copy prints NAME DIGEST per root" "$out" "$(cut -f1,3 <<<"$roots" | tr '\t' ' ')"
check "copy sent blobs" grep -q "copy: sent [1-9][0-9]* blobs" "$TMP/err1"
check "the layout has chunks" [ -n "$(find "$TMP/remote/chunks/b3" -type f)" ]
mc_hex=$(b3sum --no-names "$TMP/tree/multi-chunk.bin")
check "a multi-chunk blob has an index" [ -f "$TMP/remote/blobs/b3/${mc_hex:0:4}/$mc_hex" ]
check "one closure object per tree" [ "$(find "$TMP/remote/dirs/b3" -type f | wc -l)" -eq 1 ]
check "roots are objects" [ -f "$TMP/remote/roots/t" ] && [ -f "$TMP/remote/roots/f" ]
check "the roots index exists" [ -s "$TMP/remote/roots.index" ]
check_eq "roots on file://" "$("$CASFS" --store "$REMOTE" roots)" "$roots"
check_eq "roots on file:// through \$CASFS_STORE" "$(CASFS_STORE=$REMOTE "$CASFS" roots)" "$roots"
check_eq "ls on file://" "$("$CASFS" --store "$REMOTE" ls t)" "$("$CASFS" --store "$LOCAL" ls t)"
check_eq "ls of a subdirectory on file://" "$("$CASFS" --store "$REMOTE" ls 't/with space')" \
        "$("$CASFS" --store "$LOCAL" ls 't/with space')"
check_eq "stat on file://" "$("$CASFS" --store "$REMOTE" stat t/multi-chunk.bin t/rel-link f)" \
        "$("$CASFS" --store "$LOCAL" stat t/multi-chunk.bin t/rel-link f)"
for p in multi-chunk.bin big.bin hello.txt empty-file script.sh 'ütf-8 ñame ☃/medium.bin'; do
        check "cat t/$p on file://" cmp -s <("$CASFS" --store "$REMOTE" cat "t/$p") "$TMP/tree/$p"
done
check "cat of a single-file root on file://" cmp -s <("$CASFS" --store "$REMOTE" cat f) "$TMP/file.txt"
check "fsck on file:// is clean" "$CASFS" --store "$REMOTE" fsck

out=$("$CASFS" copy "$REMOTE" "$BACK")
check "copy back succeeds" [ $? -eq 0 ]
check_eq "copied back: the same roots" "$("$CASFS" --store "$BACK" roots)" "$roots"
check "fsck of the copy back is clean" "$CASFS" --store "$BACK" fsck
check "cat from the copy back" cmp -s <("$CASFS" --store "$BACK" cat t/multi-chunk.bin) "$TMP/tree/multi-chunk.bin"
check "outboards made for large blobs" [ -n "$(find "$BACK/blobs" -name '*.outboard')" ]

# a rerun sends nothing
"$CASFS" copy --verbose "$LOCAL" "$REMOTE" >/dev/null 2>"$TMP/err2"
check_eq "a rerun sends nothing" "$(grep -o 'sent [0-9]* blobs.*roots' "$TMP/err2")" \
        "sent 0 blobs (0 bytes), 0 directory trees, 0 roots"
"$CASFS" copy --verbose "$REMOTE" "$BACK" >/dev/null 2>"$TMP/err3"
check "a rerun to a local store sends nothing" grep -q "sent 0 blobs (0 bytes), 0 directory trees, 0 roots" "$TMP/err3"

# an interrupted copy: the copy died while sending a large blob (one of its
# chunks and its index missing), before the tree's closure and the root; the
# rerun sends only what is missing
idx=$TMP/remote/blobs/b3/${mc_hex:0:4}/$mc_hex
# the index's first chunk: chunks { digest = 1 (32 bytes) ... }
chunk_hex=$(python3 -c 'import sys; b = open(sys.argv[1], "rb").read(); assert b[0] == 0x12 and b[2:4] == b"\x0a\x20"; print(b[4:36].hex())' "$idx")
chunk=$TMP/remote/chunks/b3/${chunk_hex:0:4}/$chunk_hex
rm -f "$TMP/remote/roots/t" "$idx" "$chunk" "$TMP"/remote/dirs/b3/*/*
n_before=$(find "$TMP/remote" -type f | wc -l)
"$CASFS" copy --verbose "$LOCAL" "$REMOTE" t >/dev/null 2>"$TMP/err4"
check "the rerun sends the missing blob only" grep -q "sent 1 blobs (3000000 bytes), 1 directory trees, 1 roots" "$TMP/err4"
check "the missing chunk, index and root are back" [ -f "$idx" ] && [ -f "$chunk" ] && [ -f "$TMP/remote/roots/t" ]
check_eq "four objects written (chunk, index, closure, root)" "$(find "$TMP/remote" -type f | wc -l)" "$((n_before + 4))"

# import straight to file://, rm there
IMP=file://$TMP/imported
out=$("$CASFS" --store "$IMP" import --quiet --name t "$TMP/tree")
check_eq "import to file:// gives the same digest" "$out" "$(grep '^t ' <<<"$(cut -f1,3 <<<"$roots" | tr '\t' ' ')")"
check "fsck after import to file://" "$CASFS" --store "$IMP" fsck
check "cat after import to file://" cmp -s <("$CASFS" --store "$IMP" cat t/multi-chunk.bin) "$TMP/tree/multi-chunk.bin"
check "rm on file://" "$CASFS" --store "$IMP" rm t
check_eq "no roots left" "$("$CASFS" --store "$IMP" roots)" ""
check "the roots index follows rm" [ ! -s "$TMP/imported/roots.index" ]
check_fails "rm of a missing root on file://" "$CASFS" --store "$IMP" rm t
check_fails "gc is refused on a remote store" "$CASFS" --store "$IMP" gc

# errors: one line naming the object and the store
check_fails "copy of a missing root" "$CASFS" copy "$LOCAL" "$REMOTE" nope
EXPECT_RC=2 check_fails "copy without DST" "$CASFS" copy "$LOCAL"
check_fails "a malformed address" "$CASFS" --store "s3://" roots
"$CASFS" --store "http://127.0.0.1:1/x" roots 2>"$TMP/err5"
check_eq "an unreachable endpoint: one line" "$(wc -l <"$TMP/err5")" 1
check "it names the store" grep -q "http://127.0.0.1:1/x" "$TMP/err5"

# corruption: a flipped byte in a chunk
digest_hex=$(basename "$chunk")
python3 - "$chunk" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0xff
open(p, 'wb').write(b)
PY
"$CASFS" --store "$REMOTE" cat t/multi-chunk.bin >"$TMP/out" 2>"$TMP/err6"
check "cat of a corrupt blob fails" [ $? -eq 1 ]
check "no byte of it is written" [ ! -s "$TMP/out" ]
check "the error names the chunk and the store" grep -q "$REMOTE: chunk chunks/b3/${digest_hex:0:4}/$digest_hex is corrupt" "$TMP/err6" || cat "$TMP/err6" >&2
"$CASFS" --store "$REMOTE" fsck >"$TMP/fsck" 2>/dev/null
check "fsck on file:// fails" [ $? -eq 1 ]
check "fsck reports the blob" grep -q "blob blake3-" "$TMP/fsck"
check "fsck counts problems" grep -q "[1-9][0-9]* problems" "$TMP/fsck"

# a corrupt closure: ls fails, naming it
dirs=$(find "$TMP/remote/dirs/b3" -type f)
printf 'garbage' >"$dirs"
"$CASFS" --store "$REMOTE" ls t >/dev/null 2>"$TMP/err7"
check "ls through a corrupt closure fails" [ $? -eq 1 ]
check "the error names the closure and the store" grep -q "$REMOTE: directory closure dirs/b3/" "$TMP/err7" || cat "$TMP/err7" >&2
"$CASFS" --store "$REMOTE" fsck >"$TMP/fsck2" 2>/dev/null
check "fsck on file:// fails on a corrupt closure" [ $? -eq 1 ]
check "fsck reports the directory" grep -q "^corrupt directory blake3-.* (root t)" "$TMP/fsck2"
finish
