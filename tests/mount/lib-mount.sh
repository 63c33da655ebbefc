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

stop_mount() {
        if [ -n "$DAEMON_PID" ]; then
                kill -TERM "$DAEMON_PID" 2>/dev/null
                for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$DAEMON_PID" 2>/dev/null
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

# errno_of COMMAND...: runs it and prints the error name the failure carries (from python)
errno_of() {
        python3 - "$@" <<'PY'
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
}
