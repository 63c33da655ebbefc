#!/usr/bin/env bash
# The libcurl transport is a module the program loads at the first http(s)://
# or s3:// address (src/core/objstore-module.h): the program itself does not
# link libcurl, libssl or libcrypto; a mount daemon of a local store or of a
# file:// store never maps them; one of an http:// store does, and reads
# through it; a module that cannot be loaded is one line naming its file,
# exit status 1.
. "$(dirname "$0")/../lib/lib.sh"
. "$SOURCE_ROOT/tests/remote/lib-remote.sh"
. "$SOURCE_ROOT/tests/mount/lib-mount.sh"
. "$SOURCE_ROOT/tests/lib/nginx.sh"

TRANSPORT_LIBS='libcurl|libssl|libcrypto|libnghttp|libssh|libldap|libgnutls'

# mapped_transport: the transport's libraries the mount daemon has mapped, one a line
mapped_transport() {
        grep -E -o "/[^ ]*($TRANSPORT_LIBS)[^ /]*\$" "/proc/$DAEMON_PID/maps" | sort -u
}

# mapped_module: whether the daemon has the module mapped
mapped_module() {
        grep -q '/objstore-curl\.so$' "/proc/$DAEMON_PID/maps"
}

check "the program links none of the transport's libraries" \
        bash -c "! readelf -d \"\$1\" | grep NEEDED | grep -E -q '$TRANSPORT_LIBS'" - "$CASFS"

mkdir -p "$TMP/src/d"
echo hello >"$TMP/src/d/f"
head -c 300000 /dev/urandom >"$TMP/src/d/big"
A=$TMP/a
casfs_ok "import" --store "$A" import --name tree "$TMP/src"

# ---- a local store ----
CASFS_STORE=$A start_mount
check_eq "local store: the mount reads" "$(cat "$MNT/tree/d/f")" hello
check_eq "local store: the daemon maps none of the transport's libraries" "$(mapped_transport)" ""
check "local store: nor the module" bash -c '! grep -q objstore-curl "/proc/$1/maps"' - "$DAEMON_PID"
stop_mount

# ---- a file:// store: also without the transport ----
casfs_ok "copy to file://" copy "$A" "file://$TMP/www/casfs"
CASFS_STORE=file://$TMP/www/casfs start_mount --cache "$TMP/cache-file"
check_eq "file://: the mount reads" "$(cat "$MNT/tree/d/f")" hello
check_eq "file://: the daemon maps none of the transport's libraries" "$(mapped_transport)" ""
stop_mount

# ---- http://: the module is loaded and works ----
nginx_start "$TMP/nginx" "$TMP/www" || { fail "nginx does not start"; finish; exit 1; }
STORE=$NGINX_HTTP_URL/casfs
CASFS_STORE=$STORE start_mount --cache "$TMP/cache-http"
check "http://: the mount reads through the module" cmp "$MNT/tree/d/big" "$TMP/src/d/big"
check "http://: the daemon has the module mapped" mapped_module
check "http://: and libcurl" bash -c 'grep -q libcurl "/proc/$1/maps"' - "$DAEMON_PID"
stop_mount
casfs_ok "http://: ls" --store "$STORE" ls tree/d
check_eq "http://: ls lists" "$(cut -f4 "$TMP/out" | tr '\n' ' ')" "big f "

# ---- a module that cannot be loaded ----
# a copy of the program in a folder of its own, with a broken module next to
# it (where the program looks first)
mkdir -p "$TMP/alone"
cp "$CASFS" "$TMP/alone/casfs"
echo "not an ELF file" >"$TMP/alone/objstore-curl.so"
CASFS=$TMP/alone/casfs casfs_fails "a broken module" \
        "cannot load the remote transport $TMP/alone/objstore-curl\\.so: .*(too short|invalid ELF)" \
        --store "$STORE" roots
CASFS=$TMP/alone/casfs casfs_ok "a local store does not need it" --store "$A" roots
check_eq "a local store does not need it: the roots" "$(cut -f1 "$TMP/out")" tree
finish
