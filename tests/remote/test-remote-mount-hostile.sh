#!/usr/bin/env bash
# A remote store mounted: the roots of a file:// folder served by nginx over
# http, mounted with `casfs mount`, read back equal to the source tree (diff,
# every byte); through the hostile server, a corrupt chunk, a zstd bomb or a
# stall make the read fail with EIO, never wrong bytes, and never hang.
. "$(dirname "$0")/../mount/lib-mount.sh"
. "$SOURCE_ROOT/tests/remote/lib-remote.sh"
. "$SOURCE_ROOT/tests/lib/nginx.sh"
# the mounts' caches (one per address) in the test's folder
export XDG_CACHE_HOME=$TMP/cache

make_tree "$TMP/src"
head -c 100000 /dev/urandom >"$TMP/small.bin"
A=$TMP/a
casfs_ok "import" --store "$A" import --name tree "$TMP/src"
casfs_ok "import a small file" --store "$A" import --name small "$TMP/small.bin"
W=$TMP/www/casfs
casfs_ok "copy to file://" copy "$A" "file://$W"
nginx_start "$TMP/nginx" "$TMP/www" || { fail "nginx does not start"; finish; exit 1; }

# ---- over http ----
CASFS_STORE=$NGINX_HTTP_URL/casfs start_mount --list-root || { finish; exit 1; }
check_eq "the top lists the roots" "$(deadline 60 ls "$MNT" | sort | tr '\n' ' ')" "small tree "
check "the mounted tree equals the source (diff -r)" deadline 120 diff -r --no-dereference "$MNT/tree" "$TMP/src"
check "every byte of the small root" deadline 60 cmp -s "$MNT/small" "$TMP/small.bin"
check "a large file read twice" deadline 60 cmp -s "$MNT/tree/three-mib.bin" "$TMP/src/three-mib.bin"
check "a large file read twice (again)" deadline 60 cmp -s "$MNT/tree/three-mib.bin" "$TMP/src/three-mib.bin"
check "a read in the middle of a large file" deadline 60 cmp -s \
        <(dd if="$MNT/tree/three-mib.bin" bs=4096 skip=300 count=2 status=none) \
        <(dd if="$TMP/src/three-mib.bin" bs=4096 skip=300 count=2 status=none)
stop_mount

# ---- through the hostile server: EIO, never wrong bytes, no hang ----
hostile_server_start "$W" ||
        { fail "the hostile server does not start: $(cat "$TMP/server.out")"; finish; exit 1; }
for mode in flip bomb stall; do
        CASFS_STORE=$U/$mode start_mount || continue
        check_eq "$mode: reading the damaged file fails with EIO" "$(ERRNO_TIMEOUT=90 errno_of read "$MNT/small")" EIO
        # (a stall costs the transfer timeout for each attempt: once is enough)
        [ "$mode" = stall ] || check_eq "$mode: reading a damaged file in a tree fails with EIO" \
                "$(ERRNO_TIMEOUT=90 errno_of read "$MNT/tree/hello.txt")" EIO
        check "$mode: the directory still lists" deadline 60 test -n "$(ls "$MNT/tree")"
        stop_mount
done

finish
