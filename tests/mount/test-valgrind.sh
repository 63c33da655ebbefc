#!/usr/bin/env bash
# valgrind memcheck over import + mount + full walk and read + unmount.
. "$(dirname "$0")/lib-mount.sh"
export CASFS_STORE=$TMP/store
command -v valgrind >/dev/null || { echo "valgrind missing: skipping" >&2; exit 77; }
VG=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
    --suppressions=/dev/null)

"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"
"${VG[@]}" "$CASFS" import --name tree "$TMP/tree" >/dev/null 2>"$TMP/vg-import.log"
check_eq "import under memcheck" "$?" 0
"${VG[@]}" "$CASFS" fsck >/dev/null 2>"$TMP/vg-fsck.log"
check_eq "fsck under memcheck" "$?" 0

"${VG[@]}" "$CASFS" mount -f "$MNT" 2>"$TMP/vg-mount.log" &
DAEMON_PID=$!
for _ in $(seq 1 200); do grep -q " $MNT fuse" /proc/mounts && break; sleep 0.1; done
check "mounted under memcheck" grep -q " $MNT fuse" /proc/mounts
check "a full walk and read under memcheck" diff -r --no-dereference "$TMP/tree" "$MNT/tree"
find "$MNT/tree" -printf '%s %m %y\n' >/dev/null
fusermount3 -u "$MNT"
for _ in $(seq 1 300); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
wait "$DAEMON_PID"
rc=$?
DAEMON_PID=
check_eq "the daemon ends clean under memcheck (no invalid access, no definite leak)" "$rc" 0
[ "$rc" -eq 0 ] || cat "$TMP/vg-mount.log" >&2
finish
