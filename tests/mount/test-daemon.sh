#!/usr/bin/env bash
# casfs mount in the background, as a system tool: test-daemon.sh CASE
#   background  'casfs mount DIR | cat' returns at once; the daemon holds none
#               of its caller's descriptors and has a session of its own
#   log         a damaged blob read through a background mount: its line is in --log FILE
#   syslog      the same without --log where a syslog socket exists: the line goes there, tag casfs
#   helper      mount -t casfs, and mount -a -T FSTAB with a casfs line, then umount
. "$(dirname "$0")/lib-mount.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C
case_name=${1:?which case}

# daemon_of MOUNTPOINT: the PID of the casfs daemon serving it (its command
# line names the mountpoint, which is unique to this test's folder)
daemon_of() {
        pgrep -f -- "casfs.* $1( |\$)" | head -n 1
}

# waits up to 5 s for the mount at $MNT to go, after an unmount
gone() {
        for _ in $(seq 1 50); do
                grep -q " $MNT fuse" /proc/mounts || return 0
                sleep 0.1
        done
        return 1
}

case $case_name in
background)
        tree
        # returns within 5 s although its stdout and stderr are a pipe that
        # cat reads to the end
        timeout 5 bash -c '"$1" mount --log "$2" "$3" 2>&1 | cat > "$4"' _ "$CASFS" "$TMP/mount.log" "$MNT" "$TMP/out"
        rc=$?
        DAEMON_PID=$(daemon_of "$MNT")
        check_eq "'casfs mount DIR 2>&1 | cat' returns within 5 s, exit status 0" "$rc" 0
        check_eq "and says nothing" "$(cat "$TMP/out")" ""
        check "its daemon runs" test -n "$DAEMON_PID"
        check_eq "the mount serves" "$(cat "$MNT/tree/hello.txt")" hello
        for fd in 0 1 2; do
                check_eq "the daemon's descriptor $fd is /dev/null" "$(readlink "/proc/$DAEMON_PID/fd/$fd")" /dev/null
        done
        check_eq "it holds no pipe" "$(find "/proc/$DAEMON_PID/fd" -lname 'pipe:*' | wc -l)" 0
        check_eq "it leads a session of its own" "$(ps -o sid= -p "$DAEMON_PID" | tr -d ' ')" "$DAEMON_PID"
        check_eq "it keeps no folder of the caller's busy" "$(readlink "/proc/$DAEMON_PID/cwd")" /
        # also without --log, and from a relative mountpoint
        stop_mount
        rel=../$(basename "$TMP")/mnt
        (cd "$TMP" && timeout 5 bash -c '"$1" mount "$2" | cat' _ "$CASFS" "$rel")
        rc=$?
        DAEMON_PID=$(daemon_of "$rel")
        check_eq "without --log, a relative mountpoint: returns, exit status 0" "$rc" 0
        check_eq "and serves" "$(cat "$MNT/tree/hello.txt")" hello
        umount "$MNT"
        check "umount ends it" gone
        # a --log that cannot be written: one line, exit 1, nothing mounted
        EXPECT_RC=1 check_fails "--log in a missing folder" "$CASFS" mount --log "$TMP/no/such/log" "$MNT"
        check_eq "one line for it" "$("$CASFS" mount --log "$TMP/no/such/log" "$MNT" 2>&1 | wc -l)" 1
        check "nothing mounted" bash -c "! grep -q ' $MNT fuse' /proc/mounts"
        check "--help names the default log files" bash -c "'$CASFS' mount --help | grep -q /var/log/casfs.log"
        ;;
log)
        tree
        blob=$(damage_blob tree/hello.txt 0)
        timeout 5 "$CASFS" mount --log "$TMP/bg.log" "$MNT" > /dev/null 2>&1
        check_eq "the background mount comes up" "$?" 0
        DAEMON_PID=$(daemon_of "$MNT")
        check_eq "the damaged blob reads as EIO" "$(errno_of read "$MNT/tree/hello.txt")" EIO
        ok=false
        for _ in $(seq 1 50); do grep -q "blob $blob: corrupt" "$TMP/bg.log" && { ok=true; break; }; sleep 0.1; done
        check "its line is in the --log file" $ok
        check "stamped and named" grep -qE "^[0-9-]+T[0-9:.]+Z casfs\[$DAEMON_PID\]: (error|warning): .*blob $blob" "$TMP/bg.log"
        check "an intact file reads" cmp "$MNT/tree/big.bin" "$TMP/tree/big.bin"
        ;;
syslog)
        tree
        blob=$(damage_blob tree/hello.txt 0)
        # in a mount namespace of its own, /dev is a new tmpfs with the
        # devices the test needs and a syslog socket (/dev/log) that this
        # test reads: the system's /dev and its logs are left alone
        cat > "$TMP/in-ns.sh" <<'NS'
set -u
casfs=$1 mnt=$2 tmp=$3
mkdir -p "$tmp/realdev"
mount --rbind /dev "$tmp/realdev" && mount -t tmpfs -o mode=755 tmpfs /dev || { echo "no new /dev"; exit 99; }
for n in null zero full random urandom fuse; do
        touch "/dev/$n" && mount --bind "$tmp/realdev/$n" "/dev/$n"
done
ln -s /proc/self/fd /dev/fd
python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[1] + ".ready", "w").close()
s.settimeout(0.2)
end = time.time() + 30
with open(sys.argv[1], "ab", buffering=0) as f:
    while time.time() < end and not os.path.exists(sys.argv[1] + ".stop"):
        try:
            f.write(s.recv(65536) + b"\n")
        except socket.timeout:
            pass
' "$tmp/syslog" &
for _ in $(seq 1 50); do [ -e "$tmp/syslog.ready" ] && break; sleep 0.1; done
timeout 5 "$casfs" mount "$mnt" > /dev/null 2>&1 || { echo "mount failed"; touch "$tmp/syslog.stop"; exit 1; }
echo "mounted"
cat "$mnt/tree/hello.txt" > /dev/null 2>&1 || echo "read failed"
for _ in $(seq 1 50); do grep -q "casfs" "$tmp/syslog" 2>/dev/null && break; sleep 0.1; done
umount "$mnt" && echo "unmounted"
touch "$tmp/syslog.stop"
wait
NS
        cleanup_hooks+=('for p in $(daemon_of "$MNT"); do kill -TERM "$p"; done')
        unshare -m --propagation private bash "$TMP/in-ns.sh" "$CASFS" "$MNT" "$TMP" > "$TMP/ns.out" 2> "$TMP/ns.err"
        rc=$?
        [ "$rc" -eq 99 ] && { cat "$TMP/ns.out" >&2; echo "no new /dev in a mount namespace here: skipping" >&2; exit 77; }
        check_eq "in the namespace: exit status" "$rc" 0
        check_eq "mounted in the background, the damaged file fails, unmounted" "$(cat "$TMP/ns.out")" "mounted
read failed
unmounted"
        check "syslog got the line, tag casfs, facility daemon" \
                grep -qE "^<(24|25|26|27|28)>.* casfs\[[0-9]+\]: .*blob $blob" "$TMP/syslog"
        check "and no default log file was used for it" bash -c "! grep -qs '$blob' /var/log/casfs.log"
        [ -s "$TMP/ns.err" ] && sed 's/^/  stderr: /' "$TMP/ns.err" >&2
        ;;
helper)
        tree
        helpers=$TMP/helpers
        mkdir -p "$helpers"
        ln -s "$CASFS" "$helpers/mount.casfs"
        uid_gid="$(id -u nobody 2>/dev/null || echo 65534):$(id -g nobody 2>/dev/null || echo 65534)"
        # the helper alone, as mount(8) calls it
        check "mount.casfs -f checks the options" "$helpers/mount.casfs" "$CASFS_STORE" "$MNT" -f \
                -o rw,nosuid,nodev,list_root,uid_gid=1:2,_netdev,nofail,x-systemd.requires=a,prefetch=4
        EXPECT_RC=1 check_fails "an unknown option is refused" "$helpers/mount.casfs" "$CASFS_STORE" "$MNT" -o bogus
        check "but not with -s" "$helpers/mount.casfs" -s "$CASFS_STORE" "$MNT" -f -o bogus
        EXPECT_RC=1 check_fails "a value for a flag" "$helpers/mount.casfs" "$CASFS_STORE" "$MNT" -o xattr=1
        EXPECT_RC=32 check_fails "a mistyped store" "$helpers/mount.casfs" "$TMP/no-store" "$MNT" -o rw
        check "nothing mounted by them" bash -c "! grep -q ' $MNT fuse' /proc/mounts"
        # mount(8) looks for /sbin/mount.casfs only: in a mount namespace of
        # its own, the test's helper is laid over /sbin; the system is untouched
        printf '%s %s casfs list_root,allow_other,uid_gid=%s,noauto,x-systemd.automount 0 0\n' \
                "$CASFS_STORE" "$MNT" "$uid_gid" > "$TMP/fstab"
        printf '%s %s casfs list_root,uid_gid=%s 0 0\n' "$CASFS_STORE" "$MNT" "$uid_gid" > "$TMP/fstab-auto"
        cat > "$TMP/in-ns.sh" <<'EOF'
set -u
helpers=$1 store=$2 mnt=$3 uid_gid=$4 tmp=$5
sbin=$(readlink -f /sbin)
mount -t overlay overlay -o "lowerdir=$helpers:$sbin" "$sbin" || { echo "no overlay over $sbin"; exit 99; }
gone() {
        for _ in $(seq 1 50); do
                grep -q " $mnt fuse" /proc/mounts || return 0
                sleep 0.1
        done
        return 1
}
timeout 5 mount -t casfs "$store" "$mnt" -o list_root,ro,nodev,uid_gid="$uid_gid" || { echo "mount -t casfs failed"; exit 1; }
echo "type $(awk -v m="$mnt" '$2 == m {print $3}' /proc/mounts)"
[ "$(awk -v m="$mnt" '$2 == m {print $1}' /proc/mounts)" = "$store" ] && echo "source: the store"
echo "top $(ls "$mnt" | tr '\n' ' ')"
echo "read $(cat "$mnt/tree/hello.txt")"
echo "owner $(stat -c %u:%g "$mnt/tree/hello.txt")"
umount "$mnt" && gone && echo "umount ok"
# noauto: mount -a leaves it; mount DIR with the fstab mounts it
timeout 5 mount -a -T "$tmp/fstab"
grep -q " $mnt fuse" /proc/mounts && echo "noauto mounted by mount -a"
timeout 5 mount -T "$tmp/fstab" "$mnt" && echo "mount -T FSTAB DIR: $(cat "$mnt/tree/hello.txt")"
umount "$mnt" && gone && echo "umount ok"
timeout 5 mount -a -T "$tmp/fstab-auto" && echo "mount -a: $(cat "$mnt/tree/hello.txt")"
timeout 5 mount -a -T "$tmp/fstab-auto" && echo "mount -a again: mounted already, exit status 0"
umount "$mnt" && gone && echo "umount ok"
EOF
        # the daemons outlive the namespace's shell; each is stopped by its PID on failure
        cleanup_hooks+=('for p in $(daemon_of "$MNT"); do kill -TERM "$p"; done')
        unshare -m --propagation private bash "$TMP/in-ns.sh" "$helpers" "$CASFS_STORE" "$MNT" "$uid_gid" "$TMP" \
                > "$TMP/ns.out" 2> "$TMP/ns.err"
        rc=$?
        [ "$rc" -eq 99 ] && { cat "$TMP/ns.out" >&2; echo "no overlay mounts here: skipping" >&2; exit 77; }
        check_eq "in the namespace: exit status" "$rc" 0
        check_eq "mount -t casfs, fstab lines, umount" "$(cat "$TMP/ns.out")" "type fuse.casfs
source: the store
top tree 
read hello
owner $uid_gid
umount ok
mount -T FSTAB DIR: hello
umount ok
mount -a: hello
mount -a again: mounted already, exit status 0
umount ok"
        [ -s "$TMP/ns.err" ] && sed 's/^/  stderr: /' "$TMP/ns.err" >&2
        ;;
*)
        fail "unknown case $case_name"
        ;;
esac
finish
