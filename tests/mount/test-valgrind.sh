#!/usr/bin/env bash
# valgrind memcheck over import, fsck, ls, cat and the mount daemon: no
# invalid access, no definite leak. The daemon serves a full walk and a read
# of every file, then is unmounted with fusermount3 -u and must exit on its
# own; a second run ends with SIGTERM.
. "$(dirname "$0")/lib-mount.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C
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

# vg_mount OPTIONS...: the daemon under memcheck, in the foreground (in the
# background of the test). --sim-hints=fuse-compatible: valgrind runs one
# thread at a time and keeps that right across a blocking system call only for
# the calls it knows may block; without the hint the daemon's own stat of the
# mountpoint (which waits for FUSE_INIT) holds it, and the worker that would
# answer INIT never runs.
vg_mount() {
        "${VG[@]}" --sim-hints=fuse-compatible "$CASFS" mount -f "$@" "$MNT" 2>>"$TMP/vg-mount.log" &
        DAEMON_PID=$!
        local start=$SECONDS
        while [ $((SECONDS - start)) -lt 60 ]; do
                grep -q " $MNT fuse" /proc/mounts && return 0
                kill -0 "$DAEMON_PID" 2>/dev/null || break
                sleep 0.2
        done
        fail "the mount did not come up under memcheck within 60 s"
        return 1
}

# exited_within SECONDS: whether the daemon exits by itself in that time
exited_within() {
        local start=$SECONDS
        while [ $((SECONDS - start)) -lt "$1" ]; do
                kill -0 "$DAEMON_PID" 2>/dev/null || return 0
                sleep 0.2
        done
        return 1
}

if vg_mount --threads 2; then
        want=$(cd "$TMP/tree" && find . -printf '%y %P\n' | sort)
        got=$(cd "$MNT/tree" && deadline 120 find . -printf '%y %P\n' | sort)
        check "the walk found entries" test "$(wc -l <<<"$got")" -gt 20
        check_eq "a full walk (find -printf) under memcheck" "$got" "$want"
        check_eq "file sizes" "$(cd "$MNT/tree" && deadline 120 find . -type f -printf '%s %P\n' | sort)" \
                "$(cd "$TMP/tree" && find . -type f -printf '%s %P\n' | sort)"
        check "every file reads right, every symlink's target (diff -r)" \
                deadline 300 diff -r --no-dereference "$TMP/tree" "$MNT/tree"
        check "fusermount3 -u" fusermount3 -u "$MNT"
        if exited_within 120; then
                wait "$DAEMON_PID"
                check_eq "the daemon exits after the unmount, memcheck clean (exit status)" "$?" 0
                DAEMON_PID=
        else
                fail "the daemon did not exit within 120 s of the unmount"
        fi
fi
stop_mount

# the other way out: SIGTERM unmounts and exits
if vg_mount --threads 2; then
        check "a file reads right" deadline 120 cmp "$MNT/tree/big.bin" "$TMP/tree/big.bin"
        kill -TERM "$DAEMON_PID"
        if exited_within 120; then
                wait "$DAEMON_PID"
                check_eq "SIGTERM: memcheck clean (exit status)" "$?" 0
                DAEMON_PID=
                check "SIGTERM: no mount left" bash -c "! grep -q ' $MNT fuse' /proc/mounts"
        else
                fail "the daemon did not exit within 120 s of SIGTERM"
        fi
fi
stop_mount
[ "$failures" -eq 0 ] || cat "$TMP/vg.log" "$TMP/vg-mount.log" >&2
finish
