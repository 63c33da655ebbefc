#!/usr/bin/env bash
# casfs virtiofs against a real guest: a Linux kernel in QEMU mounts the
# device and checks what it sees (the guest is booted by guest.sh).
#   test-virtiofs.sh CASE   (guest | list-root-queues | vmm-killed | errors | remote)
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C
case_name=${1:?which case}
GUEST=$SOURCE_ROOT/tests/virtiofs/guest.sh

if [ "$case_name" != errors ]; then
        command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86 missing: skipping" >&2; exit 77; }
fi

"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"
rm "$TMP/tree/name with"$'\t'"tab"   # busybox's read would split it; the mount tests cover it
"$CASFS" import --name tree "$TMP/tree" >/dev/null || fail "import"
"$CASFS" import --name other "$TMP/tree/deep" >/dev/null || fail "import"

sock=$TMP/vfs.sock
daemon=
# start_daemon [OPTIONS...]: the back-end, listening on $sock, its lines in
# $TMP/daemon.log; stopped by its PID at the end
start_daemon() {
        rm -f "$sock"
        "$CASFS" virtiofs --socket "$sock" --log "$TMP/daemon.log" "$@" &
        daemon=$!
        cleanup_hooks+=("kill -KILL $daemon 2>/dev/null")
        for _ in $(seq 1 100); do
                [ -S "$sock" ] && return 0
                kill -0 "$daemon" 2>/dev/null || break
                sleep 0.1
        done
        fail "the daemon does not listen"
        return 1
}
# daemon_ends: the daemon exits on its own (within 10 s) and cleanly
daemon_ends() {
        local rc
        for _ in $(seq 1 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
        check "the daemon exits on its own when the VMM is gone" bash -c "! kill -0 $daemon 2>/dev/null"
        wait "$daemon" 2>/dev/null
        rc=$?
        check "and cleanly (exit status $rc, no crash)" test "$rc" -lt 128
}

case $case_name in
guest)
        (cd "$TMP/tree" && bash "$SOURCE_ROOT/tests/virtiofs/guest-checks.sh" host) > "$TMP/want"
        check "some checks in the expected output" test "$(wc -l < "$TMP/want")" -gt 20
        start_daemon
        check "the guest's checks pass" "$GUEST" --socket "$sock" --script "$SOURCE_ROOT/tests/virtiofs/guest-checks.sh" \
                --out "$TMP/got" --timeout 600
        check "the guest sees the tree exactly" diff "$TMP/want" "$TMP/got"
        diff "$TMP/want" "$TMP/got" | head -n 20 >&2
        daemon_ends
        check_eq "and logged nothing" "$(cat "$TMP/daemon.log")" ""
        ;;
remote)
        # the tree published on a web server (nginx), served through a cache
        . "$SOURCE_ROOT/tests/lib/nginx.sh"
        (cd "$TMP/tree" && bash "$SOURCE_ROOT/tests/virtiofs/guest-checks.sh" host) > "$TMP/want"
        mkdir -p "$TMP/www"
        nginx_start "$TMP/nginx" "$TMP/www" || fail "nginx does not start"
        "$CASFS" copy "$CASFS_STORE" "file://$TMP/www/casfs" >/dev/null || fail "copy to file://"
        CASFS_STORE=$NGINX_HTTP_URL/casfs start_daemon --cache "$TMP/cache"
        check "the guest's checks pass over a remote store" "$GUEST" --socket "$sock" \
                --script "$SOURCE_ROOT/tests/virtiofs/guest-checks.sh" --out "$TMP/got" --timeout 600
        check "the guest sees the remote tree exactly" diff "$TMP/want" "$TMP/got"
        diff "$TMP/want" "$TMP/got" | head -n 20 >&2
        daemon_ends
        check_eq "and logged nothing" "$(cat "$TMP/daemon.log")" ""
        check "the cache is a store of its own" "$CASFS" --store "$TMP/cache" fsck
        ;;
list-root-queues)
        start_daemon --list-root --threads 2
        want=$(printf 'other\ntree\n'; for i in 1 2 3 4; do sha256sum < "$TMP/tree/big.bin"; done)
        got=$("$GUEST" --socket "$sock" --queues 2 --smp 2 --timeout 600 \
                --cmd 'ls -1; for i in 1 2 3 4; do (cat tree/big.bin | sha256sum > /tmp/s.$i) & done; wait; cat /tmp/s.*')
        check_eq "--list-root: the guest lists the roots and reads over two request queues" "$got" "$want"
        daemon_ends
        ;;
vmm-killed)
        start_daemon
        # the guest reads in a loop until QEMU is killed by the time limit
        CASFS_GUEST_QUIET=1 "$GUEST" --socket "$sock" --timeout 45 \
                --cmd 'while true; do cat tree/big.bin tree/*/* > /dev/null 2>&1; done' >/dev/null 2>&1
        check_eq "the guest was stopped by the time limit" "$?" 1
        daemon_ends
        check "it served requests before, nothing malformed" bash -c "! grep -q 'malformed' '$TMP/daemon.log'"
        ;;
errors)
        EXPECT_RC=2 check_fails "no --socket" "$CASFS" virtiofs
        EXPECT_RC=1 check_fails "a socket path in a missing folder" "$CASFS" virtiofs --socket "$TMP/no/such/dir/sock"
        touch "$TMP/plainfile"
        EXPECT_RC=1 check_fails "a path that is not a socket" "$CASFS" virtiofs --socket "$TMP/plainfile"
        check "the file was left alone" test -f "$TMP/plainfile"
        EXPECT_RC=1 check_fails "a --log that cannot be written" "$CASFS" virtiofs --socket "$sock" --log "$TMP/no/such/log"
        check "and no socket was left" test ! -e "$sock"
        # a stale socket is replaced, and SIGTERM ends the wait for a VMM
        python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$TMP/stale.sock"
        "$CASFS" virtiofs --socket "$TMP/stale.sock" &
        pid=$!
        sleep 0.5
        check "listening on the replaced socket" python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])" "$TMP/stale.sock"
        kill -TERM "$pid"; wait "$pid"
        check_eq "SIGTERM: exit status" "$?" 0
        ;;
*)
        fail "unknown case $case_name"
        ;;
esac
finish
