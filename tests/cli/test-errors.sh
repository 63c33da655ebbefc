#!/usr/bin/env bash
# Every error path of casfs import: a clear message naming the path, exit
# status 1, no root registered or changed, the store intact.
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C

mkdir -p "$TMP/good"
printf 'keep me\n' > "$TMP/good/file"
before=$("$CASFS" import --name keep "$TMP/good")
roots_before=$("$CASFS" roots)

store_intact() {
        check_eq "roots unchanged ($1)" "$("$CASFS" roots)" "$roots_before"
        check "fsck clean ($1)" "$CASFS" fsck
        check_eq "old root still reads ($1)" "$("$CASFS" cat keep/file)" "keep me"
}

# a special file: refused, naming it
"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/tree"
mkfifo "$TMP/tree/deep/a/fifo"
check_fails "import with a FIFO" "$CASFS" import --name keep "$TMP/tree"
msg=$("$CASFS" import --name keep "$TMP/tree" 2>&1 >/dev/null)
check "message names the FIFO" grep -q "$TMP/tree/deep/a/fifo: is a FIFO" <<<"$msg"
check_eq "nothing on stdout on failure" "$("$CASFS" import --name keep "$TMP/tree" 2>/dev/null)" ""
store_intact fifo

# a socket, also at the top
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$TMP/sock"
check_fails "import of a socket" "$CASFS" import "$TMP/sock"
check "message names the socket" grep -q "sock: is a socket" <<<"$("$CASFS" import "$TMP/sock" 2>&1)"
store_intact socket

# --skip-special skips with a warning
out=$("$CASFS" import --skip-special --name skipped "$TMP/tree" 2>"$TMP/err")
check "skip-special succeeds" grep -q '^skipped blake3-' <<<"$out"
check "skip-special warns, naming the path" grep -q "warning: $TMP/tree/deep/a/fifo: skipping FIFO" "$TMP/err"
rm "$TMP/tree/deep/a/fifo"
check_eq "skipping gives the tree without it" "$out" "$(CASFS_STORE=$TMP/other "$CASFS" import --name skipped "$TMP/tree")"
"$CASFS" rm skipped

# several paths: one failing registers none
check_fails "one bad path of two" "$CASFS" import "$TMP/good/file" "$TMP/missing"
check "missing path named" grep -q "$TMP/missing: No such file or directory" <<<"$("$CASFS" import "$TMP/missing" 2>&1)"
store_intact "two paths"

# an unreadable file (as an unprivileged user when running as root)
mkdir -p "$TMP/locked"
printf 'secret\n' > "$TMP/locked/secret"
chmod 000 "$TMP/locked/secret"
if [ "$(id -u)" -eq 0 ]; then
        chmod 777 "$TMP" "$TMP/store" "$TMP/locked" && chmod -R a+rwX "$TMP/store"
        as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups --reset-env env CASFS_STORE="$CASFS_STORE" "$@"; }
else
        as_user() { "$@"; }
fi
check_fails "unreadable file" as_user "$CASFS" import --name keep "$TMP/locked"
check "message names the unreadable file" grep -q "$TMP/locked/secret: Permission denied" <<<"$(as_user "$CASFS" import --name keep "$TMP/locked" 2>&1)"
store_intact unreadable

# a store of files owned by another user reads (the O_NOATIME its reads ask
# for is refused to a reader that does not own them: asked without)
if [ "$(id -u)" -eq 0 ]; then
        mkdir -p "$TMP/others"
        printf 'small\n' > "$TMP/others/small"
        head -c 1100000 /dev/urandom > "$TMP/others/big"
        "$CASFS" import --name others "$TMP/others" >/dev/null
        chmod -R a+rwX "$TMP/store"
        check_eq "another user's small blob reads" "$(as_user "$CASFS" cat others/small)" small
        check "another user's large blob reads" cmp <(as_user "$CASFS" cat others/big) "$TMP/others/big"
        "$CASFS" rm others
fi

# a root name that is not valid
check_fails "root name with a slash" "$CASFS" import --name a/b "$TMP/good"
check_fails "root name '..'" "$CASFS" import --name .. "$TMP/good"
store_intact "bad name"

# a full disk: a store on a small tmpfs (needs root to mount)
if [ "$(id -u)" -eq 0 ] && mkdir -p "$TMP/small" && mount -t tmpfs -o size=3m tmpfs "$TMP/small"; then
        cleanup_hooks+=("umount -l '$TMP/small'")
        export CASFS_STORE=$TMP/small/store
        "$CASFS" import --name keep "$TMP/good" >/dev/null
        roots_before=$("$CASFS" roots)
        mkdir -p "$TMP/bigtree"
        for i in 1 2 3 4 5 6; do head -c 700000 /dev/urandom > "$TMP/bigtree/f$i"; done
        check_fails "import into a full store" "$CASFS" import --name big "$TMP/bigtree"
        check "no-space message" grep -q "No space left on device" <<<"$("$CASFS" import --name big "$TMP/bigtree" 2>&1)"
        store_intact "full disk"
        check_eq "no temporary files left" "$(find "$CASFS_STORE/blobs/tmp" -type f | wc -l)" 0
        # what the failed import wrote is unreferenced: gc frees it, and the
        # store is usable again for what fits
        check "gc after a full disk" "$CASFS" gc
        rm "$TMP/bigtree"/f[2-6]
        check "import after the disk was full" "$CASFS" import --name big "$TMP/bigtree"
        check "fsck after" "$CASFS" fsck
else
        echo "skipping the full-disk case: needs root to mount a tmpfs" >&2
fi

finish
