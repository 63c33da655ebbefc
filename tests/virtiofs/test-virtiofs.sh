#!/usr/bin/env bash
# casfs virtiofs against a real guest: a Linux kernel in QEMU mounts the
# device and checks what it sees (../../shared/tools/virtiofs-guest-check).
#   test-virtiofs.sh CASE   (guest | list-root-queues | vmm-killed | errors)
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C
case_name=${1:?which case}
GUEST_CHECK=${SHARED_DIR:-$SOURCE_ROOT/../shared}/tools/virtiofs-guest-check
WORKDIR=${VFS_WORKDIR:-/var/tmp/casfs-virtiofs-check}   # kernel cache, kept between runs

command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86 missing: skipping" >&2; exit 77; }
[ -x "$GUEST_CHECK" ] || { echo "$GUEST_CHECK missing: skipping" >&2; exit 77; }

"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"
rm "$TMP/tree/name with"$'\t'"tab"   # busybox's read would split it; the mount tests cover it
"$CASFS" import --name tree "$TMP/tree" >/dev/null || fail "import"
"$CASFS" import --name other "$TMP/tree/deep" >/dev/null || fail "import"
q() { printf '%q' "$1"; }
backend="$(q "$CASFS") --store $(q "$CASFS_STORE") virtiofs --socket {sock}"

case $case_name in
guest)
        (cd "$TMP/tree" && bash "$SOURCE_ROOT/tests/virtiofs/guest-checks.sh" host) > "$TMP/want"
        check "some checks in the expected output" test "$(wc -l < "$TMP/want")" -gt 20
        check "the guest sees the tree exactly" "$GUEST_CHECK" --workdir "$WORKDIR" --backend "$backend" \
                --script "$SOURCE_ROOT/tests/virtiofs/guest-checks.sh" --expect "$TMP/want" --out "$TMP/got" --timeout 600
        [ -f "$TMP/got" ] && diff "$TMP/want" "$TMP/got" | head -n 20 >&2
        ;;
list-root-queues)
        check "--list-root: the guest lists the roots over two request queues" "$GUEST_CHECK" --workdir "$WORKDIR" \
                --backend "$backend --list-root --threads 2" --num-queues 2 --smp 2 \
                --cmd 'ls -1; for i in 1 2 3 4; do (cat tree/big.bin | sha256sum > /tmp/s.$i) & done; wait; cat /tmp/s.*' \
                --expect-text "$(printf 'other\ntree\n'; for i in 1 2 3 4; do echo "$(sha256sum < "$TMP/tree/big.bin")"; done)" \
                --timeout 600
        ;;
vmm-killed)
        sock=$TMP/vfs.sock
        "$CASFS" virtiofs --socket "$sock" 2>"$TMP/daemon.log" &
        daemon=$!
        cleanup_hooks+=("kill -KILL $daemon 2>/dev/null")
        # the guest reads in a loop until QEMU is killed by the time limit
        "$GUEST_CHECK" --workdir "$WORKDIR" --socket "$sock" --ignore-rc --timeout 45 \
                --cmd 'while true; do cat tree/big.bin tree/*/* > /dev/null 2>&1; done' >/dev/null 2>&1
        ok=false
        for _ in $(seq 1 100); do kill -0 "$daemon" 2>/dev/null || { ok=true; break; }; sleep 0.1; done
        check "the daemon exits on its own when the VMM is killed" $ok
        wait "$daemon" 2>/dev/null
        rc=$?
        check "and cleanly (exit status $rc, no crash)" test "$rc" -lt 128
        check "it served requests before" bash -c "! grep -q 'malformed' '$TMP/daemon.log'"
        ;;
errors)
        EXPECT_RC=2 check_fails "no --socket" "$CASFS" virtiofs
        EXPECT_RC=1 check_fails "a socket path in a missing folder" "$CASFS" virtiofs --socket "$TMP/no/such/dir/sock"
        touch "$TMP/plainfile"
        EXPECT_RC=1 check_fails "a path that is not a socket" "$CASFS" virtiofs --socket "$TMP/plainfile"
        check "the file was left alone" test -f "$TMP/plainfile"
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
