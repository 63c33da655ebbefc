# Mount helpers for the tests: start_mount runs 'casfs mount -f' in the
# background and waits until it answers; every mount is unmounted and every
# daemon stopped by PID on exit, also when a test fails.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"

if [ ! -c /dev/fuse ] || { [ "$(id -u)" -ne 0 ] && ! command -v fusermount3 >/dev/null; }; then
        echo "no /dev/fuse here: skipping" >&2
        exit 77
fi

MNT=$TMP/mnt
mkdir -p "$MNT"
DAEMON_PID=

# abort_mount: aborts the FUSE connection of $MNT (through fusectl), which
# fails every request in flight. The way out of a hung daemon: a process
# waiting on a request the daemon has read cannot be killed, and a daemon
# thread stuck in the kernel keeps the connection (and the mount) alive.
abort_mount() {
        local dev conns=/sys/fs/fuse/connections mounted=
        dev=$(awk -v m="$MNT" '$5 == m {print $3}' /proc/self/mountinfo | tail -n 1)
        [ -n "$dev" ] || return 0
        if [ ! -e "$conns/${dev#*:}" ] && mount -t fusectl fusectl "$conns" 2>/dev/null; then
                mounted=1
        fi
        echo 1 > "$conns/${dev#*:}/abort" 2>/dev/null && echo "aborted the FUSE connection of $MNT" >&2
        [ -z "$mounted" ] || umount "$conns"
}

# deadline SECONDS COMMAND...: runs it; when it has not ended after SECONDS,
# says so and aborts the mount's connection, which ends it, and returns 124
# (timeout(1) is not enough: it cannot kill a process stuck on the mount)
deadline() {
        local secs=$1 wd rc flag=$TMP/deadline.$BASHPID fifo=$TMP/deadline-fifo.$BASHPID
        shift
        rm -f "$flag" "$fifo"
        mkfifo "$fifo"
        (
                cd / || exit 0 # not in the mount: the watchdog must not keep it busy
                # waits in a builtin, so that killing this subshell leaves no child behind
                read -r -t "$secs" _ <>"$fifo" && exit 0
                : > "$flag"
                echo "HANG: '$*' did not end within $secs s" >&2
                abort_mount
        ) >/dev/null &
        wd=$!
        "$@"
        rc=$?
        kill -TERM "$wd" 2>/dev/null
        wait "$wd" 2>/dev/null
        rm -f "$fifo"
        if [ -e "$flag" ]; then
                rm -f "$flag"
                return 124
        fi
        return "$rc"
}

stop_mount() {
        if [ -n "$DAEMON_PID" ]; then
                kill -TERM "$DAEMON_PID" 2>/dev/null
                for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$DAEMON_PID" 2>/dev/null
                # a daemon thread stuck in the kernel on its own mount outlives SIGKILL
                for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
                if kill -0 "$DAEMON_PID" 2>/dev/null; then
                        echo "the daemon does not exit: a thread of it hangs in the kernel" >&2
                        abort_mount
                fi
                wait "$DAEMON_PID" 2>/dev/null
                DAEMON_PID=
        fi
        if grep -q " $MNT fuse" /proc/mounts; then
                fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
        fi
}
cleanup_hooks+=(stop_mount)

# start_mount [OPTIONS...]: mounts the store at $MNT in the foreground (in the background of the test)
start_mount() {
        "$CASFS" mount -f "$@" "$MNT" 2>>"$TMP/daemon.log" &
        DAEMON_PID=$!
        for _ in $(seq 1 100); do
                grep -q " $MNT fuse" /proc/mounts && return 0
                kill -0 "$DAEMON_PID" 2>/dev/null || break
                sleep 0.05
        done
        fail "mount did not come up: $(cat "$TMP/daemon.log")"
        return 1
}

# damage_blob NAME/PATH OFFSET: flips a byte (flip_byte) of the blob of that
# file in the store (CASFS_STORE) and prints the blob's digest
damage_blob() {
        local blob p
        blob=$("$CASFS" stat "$1" | sed -n 's/^digest: //p')
        p=$("$STORE_TOOL" "$CASFS_STORE" blob-path "$blob")
        chmod u+w "$p" # blob files are read-only
        flip_byte "$p" "$2"
        echo "$blob"
}

# errno_of COMMAND...: runs it and prints the error name the failure carries
# (from python), or TIMEOUT when it does not return within $ERRNO_TIMEOUT
# seconds (default 30): a hang is a failure, not a stuck test
errno_of() {
        local rc
        [ -e "$TMP/errno-of.py" ] || printf '%s\n' "$ERRNO_OF_PY" > "$TMP/errno-of.py"
        deadline "${ERRNO_TIMEOUT:-30}" python3 "$TMP/errno-of.py" "$@"
        rc=$?
        if [ "$rc" -eq 124 ]; then echo TIMEOUT; fi
        return "$rc"
}
ERRNO_OF_PY=$(cat <<'PY'
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == 'listdir': os.listdir(path)
    elif op == 'stat': os.stat(path)
    elif op == 'lstat': os.lstat(path)
    elif op == 'read':
        with open(path, 'rb') as f: f.read()
    elif op == 'create': open(path, 'wb')
    elif op == 'write':
        fd = os.open(path, os.O_WRONLY); os.close(fd)
    elif op == 'mkdir': os.mkdir(path)
    elif op == 'unlink': os.unlink(path)
    elif op == 'rmdir': os.rmdir(path)
    elif op == 'rename': os.rename(path, path + '.renamed')
    elif op == 'chmod': os.chmod(path, 0o777)
    elif op == 'truncate': os.truncate(path, 0)
    elif op == 'utime': os.utime(path, (5, 5))
    elif op == 'setxattr': os.setxattr(path, 'user.test', b'1')
    elif op == 'removexattr': os.removexattr(path, 'user.castore.blob.digest')
    elif op == 'symlink': os.symlink('x', path)
    elif op == 'link': os.link(sys.argv[3], path)
    elif op == 'mknod': os.mkfifo(path)
    elif op == 'getxattr': os.getxattr(path, sys.argv[3])
    print('OK')
except OSError as e:
    print(errno.errorcode[e.errno])
PY
)

# tree: the tree gen-tree.sh makes, in $TMP/tree, imported into the store
# (CASFS_STORE) as the root "tree"
tree() {
        "$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"
        "$CASFS" import --name tree "$TMP/tree" >/dev/null || fail "import"
}
