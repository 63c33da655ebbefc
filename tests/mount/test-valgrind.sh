#!/usr/bin/env bash
# valgrind memcheck over import, fsck, ls and cat: no invalid access, no
# definite leak. (The mount daemon under memcheck is not covered yet: it does
# not come up in time under valgrind here; the sanitizer build covers it.)
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
command -v valgrind >/dev/null || { echo "valgrind missing: skipping" >&2; exit 77; }
VG=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99)

"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"
"${VG[@]}" "$CASFS" import --name tree "$TMP/tree" >/dev/null 2>"$TMP/vg.log"
check_eq "import under memcheck" "$?" 0
"${VG[@]}" "$CASFS" fsck >/dev/null 2>>"$TMP/vg.log"
check_eq "fsck under memcheck" "$?" 0
"${VG[@]}" "$CASFS" ls tree >/dev/null 2>>"$TMP/vg.log"
check_eq "ls under memcheck" "$?" 0
"${VG[@]}" "$CASFS" cat tree/big.bin 2>>"$TMP/vg.log" | cmp -s - "$TMP/tree/big.bin"
check_eq "cat under memcheck gives the bytes" "$?" 0
[ "$failures" -eq 0 ] || cat "$TMP/vg.log" >&2
finish
