#!/usr/bin/env bash
# mount of remote stores through a local cache (cache.h), against real
# servers: CASE is http (nginx serving a file:// folder) or s3 (a Ceph RGW).
# A tree published there is mounted with an empty cache and compared with its
# source (diff -r, a compiler reading headers from the mount); a second
# mount walks it again without a request for its directories; the cache is
# a local store of its own (ls, fsck). http also covers a corrupt chunk,
# a server that stops answering and comes back, --cache-size, a daemon
# killed with SIGKILL during a cold read, and a root replaced on the remote
# (--refresh, conditional requests).
. "$(dirname "$0")/../lib/lib.sh"
. "$SOURCE_ROOT/tests/remote/lib-remote.sh"
. "$SOURCE_ROOT/tests/mount/lib-mount.sh"
. "$SOURCE_ROOT/tests/lib/nginx.sh"

CASE=${1:?usage: test-remote-mount.sh http|s3}

# the source tree: every kind of node, large and small files, and headers
# that include each other for the compiler
MANY_FILES=60 make_tree "$TMP/src"
head -c 24000000 /dev/urandom >"$TMP/src/big.bin"
mkdir -p "$TMP/src/include"
for i in $(seq 1 40); do
        {
                echo "#pragma once"
                [ "$i" -gt 1 ] && echo "#include \"h$((i - 1)).h\""
                echo "static inline int h$i(int x) { return x + $i; }"
        } >"$TMP/src/include/h$i.h"
done
printf '#include <stdio.h>\n#include "h40.h"\nint main(void) { return h1(h40(0)) - 41; }\n' >"$TMP/prog.c"
A=$TMP/a
casfs_ok "import" --store "$A" import --name tree "$TMP/src"

# mount_remote STORE CACHE [OPTIONS...]: mounts STORE at $MNT through CACHE
mount_remote() {
        local store=$1 cache=$2
        shift 2
        CASFS_STORE=$store start_mount --cache "$cache" "$@"
}

# diff_tree WHAT: the mounted tree is the source, byte for byte
diff_tree() {
        checks=$((checks + 1))
        if ! deadline 120 diff -r --no-dereference "$TMP/src" "$MNT/tree" >"$TMP/diff" 2>&1; then
                fail "$1: the mount differs from the source: $(head -c 1000 "$TMP/diff")"
        fi
}

# compile WHAT: the compiler reads headers from the mount
compile() {
        check "$1: cc -fsyntax-only with headers from the mount" \
                deadline 60 cc -fsyntax-only -H -I "$MNT/tree/include" "$TMP/prog.c" 2>"$TMP/headers"
        check "$1: the headers came from the mount" grep -q "$MNT/tree/include/h1.h" "$TMP/headers"
}

# blob_key PATH: the object key of the chunk holding the blob of tree/PATH
blob_key() {
        local d
        d=$("$CASFS" --store "$A" stat "tree/$1" | awk '$1 == "digest:" {print $2}')
        python3 -c 'import base64, sys; h = base64.b64decode(sys.argv[1][7:]).hex(); print("chunks/b3/%s/%s" % (h[:4], h))' "$d"
}

# cached_bytes CACHE: bytes of the blobs in the cache (outboards not counted)
cached_bytes() {
        find "$1/blobs" -path "$1/blobs/tmp" -prune -o -type f ! -name '*.outboard' -printf '%s\n' |
                awk '{s += $1} END {print s + 0}'
}

# stop_daemon: unmounts; the daemon must have said nothing of a sanitizer's
stop_daemon() {
        stop_mount
        if grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error' "$TMP/daemon.log"; then
                fail "the daemon's sanitizer complains: $(grep -E -A5 'Sanitizer|runtime error' "$TMP/daemon.log" | head -n 30)"
        fi
}

case $CASE in
http)
        mkdir -p "$TMP/www"
        nginx_start "$TMP/nginx" "$TMP/www" || { fail "nginx does not start"; finish; exit 1; }
        W=$TMP/www/casfs
        casfs_ok "copy to file://" copy "$A" "file://$W"
        STORE=$NGINX_HTTP_URL/casfs
        requests() { nginx_requests; }
        ;;
s3)
        . "$SOURCE_ROOT/tests/lib/rgw.sh"
        rgw_start "$TMP/rgw" $((512 << 20)) || { fail "the RGW does not start"; finish; exit 1; }
        rgw_s3 PUT /bkt || fail "cannot make bucket bkt"
        casfs_ok "copy to s3://" copy "$A" s3://bkt/pre
        STORE=s3://bkt/pre
        ;;
*)
        echo "unknown case $CASE" >&2
        exit 99
        ;;
esac

# ---- an empty cache: everything comes from the remote ----
C1=$TMP/cache1
mount_remote "$STORE" "$C1" || { finish; exit 1; }
diff_tree "first mount, empty cache"
compile "first mount"
check "the mount's source is the remote's address" grep -q "^$STORE $MNT fuse" /proc/mounts
stop_daemon
check_eq "the cache names its remote" "$(cat "$C1/cache-of")" "$STORE"
casfs_ok "ls on the cache alone" --store "$C1" ls tree
check_eq "the cache lists the tree as the source store does" "$(cat "$TMP/out")" "$("$CASFS" --store "$A" ls tree)"
fsck_clean "$C1"

# ---- the same cache again: the tree costs no request ----
[ "$CASE" = http ] && before=$(requests)
mount_remote "$STORE" "$C1" --refresh 3600 || { finish; exit 1; }
diff_tree "second mount, warm cache"
if [ "$CASE" = http ]; then
        tail -n "+$((before + 1))" "$NGINX_DIR/access.log" >"$TMP/second-mount.log"
        check_eq "a tree seen before costs no request for its directories or blobs at the next mount" \
                "$(grep -c -E '"GET /casfs/(dirs|chunks|blobs)/' "$TMP/second-mount.log")" 0
        check_eq "and its root is asked once" "$(grep -c '"GET /casfs/roots/tree ' "$TMP/second-mount.log")" 1
fi
stop_daemon

if [ "$CASE" = s3 ]; then
        # a root replaced on the remote shows within --refresh
        echo "version one" >"$TMP/v1.txt"
        echo "version two, longer" >"$TMP/v2.txt"
        casfs_ok "import v1" --store "$A" import --name chg "$TMP/v1.txt"
        casfs_ok "copy v1" copy "$A" "$STORE" chg
        mount_remote "$STORE" "$TMP/cache-s3" --refresh 1 || { finish; exit 1; }
        check_eq "v1 through the mount" "$(cat "$MNT/chg")" "version one"
        casfs_ok "import v2" --store "$A" import --name chg "$TMP/v2.txt"
        casfs_ok "copy v2" copy "$A" "$STORE" chg
        for _ in $(seq 1 100); do
                [ "$(cat "$MNT/chg" 2>/dev/null)" = "version two, longer" ] && break
                sleep 0.1
        done
        check_eq "v2 through the mount within the refresh period" "$(cat "$MNT/chg")" "version two, longer"
        stop_daemon
        fsck_clean "$TMP/cache-s3"
        finish
        exit $?
fi

# ---- reading ahead: past the end of a directory, in the order of find ----
before=$(requests)
mount_remote "$STORE" "$TMP/cache-ahead" || { finish; exit 1; }
find "$MNT/tree" -printf '%s %m %p\n' >/dev/null
tail -n "+$((before + 1))" "$NGINX_DIR/access.log" >"$TMP/walk.log"
check_eq "a metadata walk fetches no blob" "$(grep -c -E '"GET /casfs/(chunks|blobs)/' "$TMP/walk.log")" 0
f1_hex=$("$CASFS" --store "$A" stat tree/many/f1 | awk '$1 == "digest:" {print $2}' |
        python3 -c 'import base64, sys; print(base64.b64decode(sys.stdin.read().strip()[7:]).hex())')
f1_cached=$TMP/cache-ahead/blobs/${f1_hex:0:2}/${f1_hex:2:2}/$f1_hex
check "many/f1 is not cached before a read" test ! -e "$f1_cached"
cat "$MNT/tree/include/h1.h" >/dev/null
sleep 1
check "one file read alone fetches nothing past its directory" test ! -e "$f1_cached"
(cd "$MNT/tree/include" && export LC_ALL=C && cat -- * >/dev/null)
for _ in $(seq 1 100); do
        [ -e "$f1_cached" ] && break
        sleep 0.1
done
check "reading include/ in order fetches the files after it, many/f1 among them" test -e "$f1_cached"
diff_tree "a mount reading ahead"
tail -n "+$((before + 1))" "$NGINX_DIR/access.log" | grep -o '"GET /casfs/chunks/[^ ]*' | sort | uniq -d >"$TMP/dups"
check_eq "no chunk was fetched twice" "$(cat "$TMP/dups")" ""
stop_daemon
fsck_clean "$TMP/cache-ahead"

# ---- reading ahead only for a reader that waits: what is cached fetches nothing more ----
mount_remote "$STORE" "$TMP/cache-again" --prefetch 0 || { finish; exit 1; }
(cd "$MNT/tree/include" && export LC_ALL=C && cat -- * >/dev/null)
stop_daemon
f1_cached=$TMP/cache-again/blobs/${f1_hex:0:2}/${f1_hex:2:2}/$f1_hex
check "many/f1 is not cached after a read of include/ without reading ahead" test ! -e "$f1_cached"
before=$(requests)
mount_remote "$STORE" "$TMP/cache-again" || { finish; exit 1; }
(cd "$MNT/tree/include" && export LC_ALL=C && cat -- * >/dev/null)
sleep 1
tail -n "+$((before + 1))" "$NGINX_DIR/access.log" >"$TMP/again.log"
check_eq "reading cached files in order fetches no blob" \
        "$(grep -c -E '"GET /casfs/(chunks|blobs)/' "$TMP/again.log")" 0
check "many/f1 is still not cached" test ! -e "$f1_cached"
stop_daemon

# ---- a large blob: the chunks a read touches, each fetched once ----
big_hex=$("$CASFS" --store "$A" stat tree/big.bin | awk '$1 == "digest:" {print $2}' |
        python3 -c 'import base64, sys; print(base64.b64decode(sys.stdin.read().strip()[7:]).hex())')
before=$(requests)
mount_remote "$STORE" "$TMP/cache-big" --prefetch 0 || { finish; exit 1; }
dd if="$MNT/tree/big.bin" of="$TMP/piece" bs=4096 skip=2500 count=1 status=none
check "a 4 KiB read in the middle of a large file has the right bytes" \
        cmp -s "$TMP/piece" <(dd if="$TMP/src/big.bin" bs=4096 skip=2500 count=1 status=none)
chunks_read=$(tail -n "+$((before + 1))" "$NGINX_DIR/access.log" | grep -c '"GET /casfs/chunks/')
check "it fetches a few chunks, not the blob ($chunks_read chunks)" test "$chunks_read" -le 6
check "the blob is not in the cache whole yet" test ! -e "$TMP/cache-big/blobs/${big_hex:0:2}/${big_hex:2:2}/$big_hex"
pids=()
for _ in 1 2 3 4; do
        (cd / && cmp -s "$MNT/tree/big.bin" "$TMP/src/big.bin" && : >"$TMP/big-ok.$BASHPID") &
        pids+=($!)
done
wait "${pids[@]}"
check_eq "four readers at once read it right" "$(ls "$TMP"/big-ok.* 2>/dev/null | wc -l)" 4
tail -n "+$((before + 1))" "$NGINX_DIR/access.log" | grep -o '"GET /casfs/chunks/[^ ]*' | sort | uniq -d >"$TMP/dups"
check_eq "no chunk was fetched twice" "$(cat "$TMP/dups")" ""
check "once read whole, the blob is in the cache whole" \
        test -e "$TMP/cache-big/blobs/${big_hex:0:2}/${big_hex:2:2}/$big_hex"
check "with its outboard" test -e "$TMP/cache-big/blobs/${big_hex:0:2}/${big_hex:2:2}/$big_hex.outboard"
stop_daemon
fsck_clean "$TMP/cache-big"

# ---- a corrupt chunk: EIO and a line naming it; the rest intact ----
key=$(blob_key many/f9)
flip_byte "$W/$key" 20
mount_remote "$STORE" "$TMP/cache2" || { finish; exit 1; }
check_eq "a corrupt chunk reads as EIO" "$(errno_of read "$MNT/tree/many/f9")" EIO
check "a log line names the corrupt chunk" grep -q "${key##*/}" "$TMP/daemon.log"
checks=$((checks + 1))
if ! deadline 120 diff -r --no-dereference -x f9 "$TMP/src" "$MNT/tree" >"$TMP/diff" 2>&1; then
        fail "the rest of the tree reads wrong: $(head -c 1000 "$TMP/diff")"
fi
stop_daemon
flip_byte "$W/$key" 20
fsck_clean "$TMP/cache2"

# ---- the server stops answering, then comes back ----
: >"$TMP/daemon.log"
mount_remote "$STORE" "$TMP/cache3" --timeout 2 || { finish; exit 1; }
check "a file read while the server answers" cmp -s "$MNT/tree/many/f3" "$TMP/src/many/f3"
workers=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
# shellcheck disable=SC2086
kill -STOP $workers
check "a cached file reads while the server does not answer" cmp -s "$MNT/tree/many/f3" "$TMP/src/many/f3"
got=$(ERRNO_TIMEOUT=30 errno_of read "$MNT/tree/three-mib.bin")
# shellcheck disable=SC2086
kill -CONT $workers
check_eq "a file not cached reads as EIO while the server does not answer" "$got" EIO
check "a log line names the store" grep -q "127.0.0.1" "$TMP/daemon.log"
check_eq "one line says it stops answering" "$(grep -c 'until it answers' "$TMP/daemon.log")" 1
check "the file reads once the server is back, without a remount" \
        deadline 60 cmp -s "$MNT/tree/three-mib.bin" "$TMP/src/three-mib.bin"
check "one line says it answers again" grep -q "answers again" "$TMP/daemon.log"
stop_daemon
# a mount while the server does not answer serves what its cache holds
# shellcheck disable=SC2086
kill -STOP $workers
mount_remote "$STORE" "$C1" --timeout 2
diff_tree "a mount while the server does not answer, warm cache"
stop_daemon
# shellcheck disable=SC2086
kill -CONT $workers
check "it said it serves what the cache holds" grep -q "serving what .* holds" "$TMP/daemon.log"

# ---- --cache-size smaller than the tree ----
bound=$((4 << 20))
total=$(du -sb --apparent-size "$TMP/src" | cut -f1)
check "the tree is larger than the bound ($total bytes)" test "$total" -gt "$bound"
mount_remote "$STORE" "$TMP/cache4" --cache-size 4M --prefetch 0 || { finish; exit 1; }
diff_tree "--cache-size, first full read"
diff_tree "--cache-size, second full read"
stop_daemon
got=$(cached_bytes "$TMP/cache4")
check "the cache stays within --cache-size ($got bytes)" test "$got" -le "$bound"
check "the cache holds something" test "$got" -gt 0
fsck_clean "$TMP/cache4"

# ---- the daemon killed with SIGKILL during a cold read ----
mount_remote "$STORE" "$TMP/cache5" || { finish; exit 1; }
(cd / && find "$MNT/tree" -type f -exec cat {} + >/dev/null 2>&1) &
reader=$!
for _ in $(seq 1 200); do
        [ "$(find "$TMP/cache5/blobs" -type f 2>/dev/null | wc -l)" -ge 20 ] && break
        sleep 0.02
done
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
wait "$reader" 2>/dev/null
stop_mount
mount_remote "$STORE" "$TMP/cache5" || { finish; exit 1; }
diff_tree "remounted after SIGKILL"
stop_daemon
fsck_clean "$TMP/cache5"

# ---- a root replaced on the remote ----
echo "version one" >"$TMP/v1.txt"
echo "version two, longer" >"$TMP/v2.txt"
casfs_ok "import v1" --store "$A" import --name chg "$TMP/v1.txt"
casfs_ok "copy v1" copy "$A" "file://$W" chg
mount_remote "$STORE" "$TMP/cache6" --refresh 1 || { finish; exit 1; }
check_eq "v1 through the mount" "$(cat "$MNT/chg")" "version one"
ls "$MNT/tree" >/dev/null
exec 3<"$MNT/chg"
casfs_ok "import v2" --store "$A" import --name chg "$TMP/v2.txt"
casfs_ok "copy v2" copy "$A" "file://$W" chg
# nginx's ETag is the file's mtime (in seconds) and length: a record
# rewritten within the second, of the same length, would look unchanged
touch -d "@$(($(stat -c %Y "$W/roots/chg") + 2))" "$W/roots/chg"
for _ in $(seq 1 100); do
        [ "$(cat "$MNT/chg" 2>/dev/null)" = "version two, longer" ] && break
        sleep 0.1
done
check_eq "v2 through the mount within the refresh period" "$(cat "$MNT/chg")" "version two, longer"
check_eq "a file open before keeps its content" "$(cat <&3)" "version one"
exec 3<&-
check "an unchanged root costs a conditional request (304)" grep -q '"GET /casfs/roots/tree HTTP/1.1" 304' \
        "$NGINX_DIR/access.log"
casfs_ok "remove the root" --store "file://$W" rm chg
for _ in $(seq 1 100); do
        [ -e "$MNT/chg" ] || break
        sleep 0.1
done
check "a removed root goes within the refresh period" test ! -e "$MNT/chg"
stop_daemon

finish
