#!/usr/bin/env bash
# A hostile server (hostile-server.py) in front of a layout casfs wrote: for
# each broken answer, casfs reading over http gives one clear line naming the
# object and exit 1, never a wrong byte (cat writes nothing; a copy registers
# nothing and stores nothing corrupt), and never hangs (every command is
# bounded by `timeout 60`). The lines name what failed: the transport's
# detail and the command's summary. Transient faults (500s, a reset) are retried.
. "$(dirname "$0")/../lib/lib.sh"
. "$SOURCE_ROOT/tests/remote/lib-remote.sh"

make_tree "$TMP/src"
head -c 1500000 /dev/urandom >"$TMP/lonely.bin" # several chunks: a blob index
head -c 100000 /dev/urandom >"$TMP/small.bin"   # one chunk
A=$TMP/a
casfs_ok "import" --store "$A" import --name tree "$TMP/src"
casfs_ok "import a file" --store "$A" import --name lonely "$TMP/lonely.bin"
lonely=$(cut -d' ' -f2 "$TMP/out")
casfs_ok "import a small file" --store "$A" import --name small "$TMP/small.bin"
small=$(cut -d' ' -f2 "$TMP/out")
small_hex=$(b3sum --no-names "$TMP/small.bin")
lonely_hex=$(b3sum --no-names "$TMP/lonely.bin")
tree=$(awk '$1 == "tree" {print $3}' <("$CASFS" --store "$A" roots))
W=$TMP/layout
casfs_ok "copy to file://" copy "$A" "file://$W"
check "casfs wrote a blob index for the large file" test -f "$W/blobs/b3/${lonely_hex:0:4}/$lonely_hex"
tree_hex=$(python3 -c 'import base64, sys; print(base64.b64decode(sys.argv[1][7:]).hex())' "$tree")

# the object named, as hex or as blake3-<base64>
names() { printf '%s' "$1"; [ -z "${2:-}" ] || printf '|%s' "$(sed 's/[+]/[+]/g' <<<"$2")"; }

hostile_server_start "$W" --log "$TMP/server.log" ||
        { fail "the hostile server does not start: $(cat "$TMP/server.out")"; finish; exit 1; }

casfs_ok "the server serves the layout as it is" --store "$U/ok" cat small
check "cat through the server" cmp -s "$TMP/out" "$TMP/small.bin"

# refused MODE PATTERN [WHAT]: cat small, cat lonely, ls of a directory
# and a copy of everything (WHAT: which of them) fail, naming the object
# (PATTERN), nothing written, nothing registered. A line of what the server
# did and one of what failed: a few lines, one per object in the copies.
ERR_LINES_MAX=12
n=0
refused() {
        local mode=$1 pattern=$2 what=${3:-small lonely copy} w
        for w in $what; do
                n=$((n + 1))
                case $w in
                small) casfs_fails "$mode: cat small" "$pattern" --store "$U/$mode" cat small ;;
                lonely) casfs_fails "$mode: cat lonely" "$pattern" --store "$U/$mode" cat lonely ;;
                tree) casfs_fails "$mode: ls tree" "$pattern" --store "$U/$mode" ls tree/many ;;
                copy)
                        # the roots that are intact are copied (and printed)
                        STDOUT_OK=1 casfs_fails "$mode: copy" "$pattern" copy "$U/$mode" "$TMP/dst$n"
                        check "$mode: the failed copy stores nothing corrupt" fsck_or_absent "$TMP/dst$n"
                        ;;
                esac
        done
}
fsck_or_absent() { [ ! -e "$1/meta.lmdb" ] || "$CASFS" --store "$1" fsck >/dev/null 2>&1; }
# a copy that fails registers no root whose closure it could not fetch
no_root() { ! "$CASFS" --store "$1" roots 2>/dev/null | cut -f1 | grep -qx "$2"; }

refused flip "$(names "$small_hex" "$small")" small
refused flip 'chunks/b3|blobs/b3|blake3-|[0-9a-f]{64}' "lonely copy"
check "flip: the copy did not register the damaged file" no_root "$TMP/dst$n" small
refused bomb "$(names "$small_hex" "$small")" small
refused bomb 'chunks/b3|blobs/b3|blake3-|[0-9a-f]{64}' "lonely copy"
refused blob-sizes "$(names "$lonely_hex" "$lonely")|blobs/b3" lonely
refused blob-sizes 'blobs/b3|blake3-|[0-9a-f]{64}' copy
check "blob-sizes: the copy did not register the file" no_root "$TMP/dst$n" lonely
refused dirs-untrusted "$(names "$tree_hex" "$tree")|dirs/b3" "tree copy"
check "dirs-untrusted: the copy did not register the tree" no_root "$TMP/dst$n" tree
# the forged top the server points the root at
forged=$(curl -s "$U/dirs-noncanonical/roots/tree" | python3 -c '
import sys
b = sys.stdin.buffer.read()
print(b[b.index(b"\x12\x20") + 2:][:32].hex())')
refused dirs-noncanonical "$(names "$forged")|dirs/b3|canonical" "tree copy"
check "dirs-noncanonical: the copy did not register the tree" no_root "$TMP/dst$n" tree
refused oversized 'roots|chunks/b3|blobs/b3|large|size|[0-9a-f]{64}'
refused oversized@chunks "$(names "$small_hex" "$small")|chunks/b3/${small_hex:0:4}/$small_hex" small
refused oversized@blobs "$(names "$lonely_hex" "$lonely")|blobs/b3/${lonely_hex:0:4}/$lonely_hex" lonely
refused oversized@dirs "$(names "$tree_hex" "$tree")|dirs/b3/${tree_hex:0:4}/$tree_hex" tree
refused redirect 'redirect|30[0-9]|roots|chunks/b3|[0-9a-f]{64}' "small copy"
refused redirect@chunks "chunks/b3/${small_hex:0:4}/$small_hex" small
refused error@chunks "chunks/b3/${small_hex:0:4}/$small_hex" small
refused stall "$(names "$small_hex" "$small")|chunks/b3|time" small
refused error '500|server|roots|chunks/b3|[0-9a-f]{64}' "small copy"
refused reset "$(names "$small_hex" "$small")|chunks/b3|reset|connection" small
refused truncated "$(names "$small_hex" "$small")|chunks/b3|short|truncat|partial" small
check_eq "no forged entry ever shown" "$(grep -c evil "$ALL_OUTPUT")" 0

# transient faults: retried, and then the right bytes
casfs_ok "flaky: cat after two 500s" --store "$U/flaky" cat small
check "flaky: the bytes" cmp -s "$TMP/out" "$TMP/small.bin"
check "flaky: the server did answer 500 first" grep -q '^GET /flaky/.* 500$' "$TMP/server.log"
casfs_ok "flaky: a whole copy" copy "$U/flaky" "$TMP/flaky"
fsck_clean "$TMP/flaky"
check_eq "flaky: every root" "$(local_roots "$TMP/flaky" | sort)" "$(local_roots "$A" | sort)"
casfs_ok "reset-once: cat after a reset" --store "$U/reset-once" cat lonely
check "reset-once: the bytes" cmp -s "$TMP/out" "$TMP/lonely.bin"
casfs_ok "reset-once: a whole copy" copy "$U/reset-once" "$TMP/reset-once"
fsck_clean "$TMP/reset-once"
check_files "$TMP/reset-once" tree "$TMP/src"

finish
