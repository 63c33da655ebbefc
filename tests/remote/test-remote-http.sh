#!/usr/bin/env bash
# file:// stores, and the same folders read over http and https from nginx
# (tests/lib/nginx.sh): a copy to file:// checked by an encoder of its own
# (check-layout.py), read back over file://, http and https (with
# --ca-bundle or CASFS_CA_BUNDLE; without, the server's certificate must be
# refused); http is read-only; a layout written by encode-layout.py (chunks of
# other sizes than casfs's: 64 KiB, 100 KiB, 4 MiB) reads back byte for byte with the digests of
# `casfs import`.
. "$(dirname "$0")/../lib/lib.sh"
. "$SOURCE_ROOT/tests/remote/lib-remote.sh"
. "$SOURCE_ROOT/tests/lib/nginx.sh"

source_store
mkdir -p "$TMP/www"
nginx_start "$TMP/nginx" "$TMP/www" || { fail "nginx does not start"; finish; exit 1; }

# ---- file:// ----
W=$TMP/www/casfs
casfs_ok "copy to file://" copy "$A" "file://$W"
check_eq "copy to file:// prints NAME DIGEST per root" "$(sort "$TMP/out")" "$want"
check "the folder holds the layout (check-layout.py)" python3 "$REMOTE_DIR/check-layout.py" --objects "$W"
objects() { (cd "$1" && find chunks blobs dirs -type f -printf '%i %s %P\n' | sort); }
before=$(objects "$W")
casfs_ok "second copy to file://" copy "$A" "file://$W"
check_eq "a second copy to file:// writes no object again" "$(objects "$W")" "$before"
casfs_ok "roots of file://" --store "file://$W" roots
check_eq "file:// has the roots of the local store" "$(sort "$TMP/out")" "$(local_roots "$A" | sort)"
check_files "file://$W" tree "$TMP/src"
casfs_ok "copy back from file://" copy "file://$W" "$TMP/b"
check_eq "copy back from file:// prints every root" "$(sort "$TMP/out")" "$want"
fsck_clean "$TMP/b"
check_files "$TMP/b" tree "$TMP/src"

casfs_ok "import straight to file://" --store "file://$TMP/www/direct" import --name tree "$TMP/src"
check_eq "import to file:// gives the local digest" "$(cat "$TMP/out")" "$want_tree"
check "import to file:// writes the layout (check-layout.py)" python3 "$REMOTE_DIR/check-layout.py" --objects "$TMP/www/direct"
before=$(objects "$TMP/www/direct")
casfs_ok "import to file:// again" --store "file://$TMP/www/direct" import --name tree "$TMP/src"
check_eq "a second import to file:// writes no object again" "$(objects "$TMP/www/direct")" "$before"
# fsck of a remote store: the chunks of a blob of several are referenced
# through its index; what no root reaches any more is counted
casfs_ok "fsck of file://" --store "file://$TMP/www/direct" fsck
check "no problem, no unreferenced blob" grep -q "; 0 problems; 0 unreferenced blobs" "$TMP/out"
casfs_ok "import a file of several chunks" --store "file://$TMP/www/direct" import --name gone "$TMP/lonely.bin"
casfs_ok "its root removed" --store "file://$TMP/www/direct" rm gone
n_chunks=$(find "$TMP/www/direct/chunks" -type f | wc -l)
casfs_ok "fsck of file:// again" --store "file://$TMP/www/direct" fsck
n_unref=$(sed -n 's/.* \([0-9]*\) unreferenced blobs.*/\1/p' "$TMP/out")
check "the blob and its chunks unreferenced now (${n_unref:-none} of $n_chunks chunks)" \
        test "${n_unref:-0}" -ge 3
casfs_ok "import it again" --store "file://$TMP/www/direct" import --name gone "$TMP/lonely.bin"
casfs_ok "fsck of file:// once more" --store "file://$TMP/www/direct" fsck
check "none unreferenced again" grep -q "; 0 problems; 0 unreferenced blobs" "$TMP/out"

# ---- a copy to file:// killed at random moments, then finished ----
mkdir -p "$TMP/ksrc"
for i in $(seq 1 100); do head -c $((200000 + i * 4000)) /dev/urandom >"$TMP/ksrc/f$i"; done
casfs_ok "import the tree to kill copies of" --store "$TMP/ka" import --name ktree "$TMP/ksrc"
want_k=$(cat "$TMP/out")
K=$TMP/kill-dst
# 'PATH INODE' of every object: a file:// put is a rename, so an object sent
# again has a new inode
kobjects() { [ ! -d "$1" ] || (cd "$1" && find chunks blobs dirs -type f -printf '%P %i\n' 2>/dev/null | sort); }
killed=0
for round in $(seq 1 4); do
        before=$(kobjects "$K")
        "$CASFS" copy --jobs 2 "$TMP/ka" "file://$K" >/dev/null 2>>"$ALL_OUTPUT" &
        pid=$!
        sleep "0.0$((RANDOM % 90 + 10))"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null && rc=0 || rc=$?
        [ "$rc" -ne 137 ] || killed=$((killed + 1))
        check_eq "file://: nothing complete written twice (round $round)" \
                "$(join <(printf '%s\n' "$before") <(kobjects "$K") | awk '$2 != $3 {print $1}' | head -n 3)" ""
        # a root present is complete (check-layout.py walks its closure)
        [ ! -e "$K/roots/ktree" ] || check "file://: the root present after kill $round is complete" \
                python3 "$REMOTE_DIR/check-layout.py" "$K"
        # nothing but objects and the root
        check "file://: nothing else where objects are read (round $round)" \
                test -z "$(cd "$K" 2>/dev/null && find chunks blobs dirs roots -type f 2>/dev/null |
                        grep -v -E '^(chunks|blobs|dirs)/b3/[0-9a-f]{4}/[0-9a-f]{64}$|^roots/ktree$')"
done
echo "the copy to file:// was killed while it ran in $killed of 4 rounds" >&2
check "file://: at least one kill landed while the copy ran" test "$killed" -ge 1
before=$(kobjects "$K")
casfs_ok "file://: the copy after the kills" copy "$TMP/ka" "file://$K"
check_eq "file://: the copy after the kills prints the root" "$(cat "$TMP/out")" "$want_k"
check_eq "file://: nothing complete written twice after the kills" \
        "$(join <(printf '%s\n' "$before") <(kobjects "$K") | awk '$2 != $3 {print $1}' | head -n 3)" ""
check "file://: complete after the kills (check-layout.py)" python3 "$REMOTE_DIR/check-layout.py" "$K"
casfs_ok "file://: copy back after the kills" copy "file://$K" "$TMP/kb"
fsck_clean "$TMP/kb"
check_files "$TMP/kb" ktree "$TMP/ksrc"

# ---- http and https ----
H=$NGINX_HTTP_URL/casfs
S=$NGINX_HTTPS_URL/casfs
casfs_ok "roots over http" --store "$H" roots
check_eq "roots over http" "$(sort "$TMP/out")" "$(local_roots "$A" | sort)"
casfs_ok "ls over http" --store "$H" ls tree
check_eq "ls over http is the local ls" "$(cat "$TMP/out")" "$("$CASFS" --store "$A" ls tree)"
casfs_ok "cat over http" --store "$H" cat lonely
check "cat over http: the bytes" cmp -s "$TMP/out" "$TMP/lonely.bin"
check_files "$H" tree "$TMP/src"
casfs_ok "copy from http" copy "$H" "$TMP/c"
check_eq "copy from http prints every root" "$(sort "$TMP/out")" "$want"
fsck_clean "$TMP/c"
check_files "$TMP/c" tree "$TMP/src"
# http is read-only: a copy or an import is refused at once, with one line
echo "not on the server" >"$TMP/new.txt"
casfs_ok "import a new root" --store "$TMP/a2" import --name new "$TMP/new.txt"
casfs_fails "copy to http is refused" 'read-only|read only' copy "$TMP/a2" "$H"
casfs_fails "import to http is refused" 'read-only|read only' --store "$H" import --name x "$TMP/new.txt"
casfs_fails "import to http of content it has is refused" 'read-only|read only' \
        --store "$H" import --name x "$TMP/lonely.bin"
check_eq "no PUT sent to the web server" "$(grep -c '"PUT ' "$NGINX_DIR/access.log")" 0
check "nothing was written" test ! -e "$W/roots/new"

casfs_ok "roots over https with --ca-bundle" --ca-bundle "$NGINX_CA" --store "$S" roots
check_eq "roots over https" "$(sort "$TMP/out")" "$(local_roots "$A" | sort)"
CASFS_CA_BUNDLE=$NGINX_CA casfs_ok "copy from https with CASFS_CA_BUNDLE" copy "$S" "$TMP/d"
check_eq "copy from https prints every root" "$(sort "$TMP/out")" "$want"
fsck_clean "$TMP/d"
check_files "$TMP/d" tree "$TMP/src"
casfs_fails "https without the CA: the certificate is refused" 'certificate|verif|ssl|tls' --store "$S" roots
casfs_fails "a copy from https without the CA is refused" 'certificate|verif|ssl|tls' copy "$S" "$TMP/e"
check "nothing registered by the refused copy" no_roots "$TMP/e"
# a bundle that does not hold the server's CA
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=other CA" -keyout "$TMP/other.key" \
        -out "$TMP/other.pem" >/dev/null 2>&1
casfs_fails "https with another CA: the certificate is refused" 'certificate|verif|ssl|tls' \
        --ca-bundle "$TMP/other.pem" --store "$S" roots
casfs_fails "a missing object over http: one line" 'nosuch' --store "$H" cat nosuch/file

# ---- a layout written by another encoder, with other chunk sizes ----
# (4 MiB: a file is one chunk of over 1 MiB, in a zstd frame that does not state its size)
for cs in 65536 102400 4194304; do
        F=$TMP/www/foreign-$cs
        zopt=()
        [ "$cs" -lt 4194304 ] || zopt=(--no-content-size)
        check "encode-layout.py with $cs-byte chunks" python3 "$REMOTE_DIR/encode-layout.py" --chunk-size "$cs" "${zopt[@]}" \
                "$F" tree="$TMP/src" lonely="$TMP/lonely.bin" >"$TMP/enc-out"
        check_eq "encode-layout.py gives casfs import's digests ($cs)" "$(sort "$TMP/enc-out")" "$want"
        casfs_ok "copy the foreign layout from file:// ($cs)" copy "file://$F" "$TMP/f$cs"
        check_eq "copy of the foreign layout prints casfs import's digests ($cs)" "$(sort "$TMP/out")" "$want"
        check_eq "the foreign layout's roots ($cs)" "$(local_roots "$TMP/f$cs" | sort)" "$(local_roots "$A" | sort)"
        fsck_clean "$TMP/f$cs"
        check_files "$TMP/f$cs" tree "$TMP/src"
        check "the foreign single file ($cs)" cmp -s <("$CASFS" --store "$TMP/f$cs" cat lonely) "$TMP/lonely.bin"
        casfs_ok "copy the foreign layout over https ($cs)" --ca-bundle "$NGINX_CA" copy "$NGINX_HTTPS_URL/foreign-$cs" "$TMP/g$cs"
        check_eq "copy of the foreign layout over https ($cs)" "$(sort "$TMP/out")" "$want"
        fsck_clean "$TMP/g$cs"
        check_files "$NGINX_HTTP_URL/foreign-$cs" tree "$TMP/src"
done

finish
