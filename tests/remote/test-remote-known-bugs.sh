#!/usr/bin/env bash
# Known bugs of remote stores, one case each (test-remote-known-bugs.sh
# CASE): each fails until the bug is fixed. meson counts them as expected
# failures; once a case passes, meson reports an unexpected pass: move its
# checks into the test they belong to and drop the case.
#
#   http-import-existing  casfs --store http://... import of content the server
#                         has: exit 1 with one line (crashed: SIGSEGV, a NULL
#                         size pointer given to cas_objstore_head)
#   http-readonly-at-once a copy or an import to http:// is refused before any
#                         request, with one line (is tried object by object:
#                         three lines, the roots it had nothing to send printed)
#   s3-import-again       a second import of the same tree straight to s3://
#                         sends no object again (sends every one again)
#   file-import-again     the same to file:// (rewrites the top's dirs object)
. "$(dirname "$0")/../lib/lib.sh"
. "$SOURCE_ROOT/tests/remote/lib-remote.sh"

case=${1:?which case}
"$SOURCE_ROOT/tests/lib/gen-tree.sh" "$TMP/src"

case $case in
http-import-existing | http-readonly-at-once)
        . "$SOURCE_ROOT/tests/lib/nginx.sh"
        mkdir -p "$TMP/www"
        casfs_ok "import" --store "$TMP/a" import --name tree "$TMP/src"
        casfs_ok "copy to file://" copy "$TMP/a" "file://$TMP/www/casfs"
        nginx_start "$TMP/nginx" "$TMP/www" || { fail "nginx does not start"; finish; exit 1; }
        H=$NGINX_HTTP_URL/casfs
        if [ "$case" = http-import-existing ]; then
                casfs_fails "import to http of content it has is refused" 'read-only|read only' \
                        --store "$H" import --name x "$TMP/src/big.bin"
        else
                echo "not on the server" >"$TMP/new.txt"
                casfs_ok "import a new root" --store "$TMP/a" import --name new "$TMP/new.txt"
                casfs_fails "copy to http is refused at once, one line" 'read-only|read only' copy "$TMP/a" "$H"
                casfs_fails "import to http is refused at once, one line" 'read-only|read only' \
                        --store "$H" import --name x "$TMP/new.txt"
                check_eq "no PUT sent for the refused copy" "$(grep -c '"PUT ' "$NGINX_DIR/access.log")" 0
        fi
        ;;
s3-import-again)
        . "$SOURCE_ROOT/tests/lib/rgw.sh"
        rgw_start "$TMP/rgw" $((256 << 20)) || { fail "the RGW does not start"; finish; exit 1; }
        rgw_s3 PUT /direct || fail "cannot make the bucket"
        casfs_ok "import straight to s3" --store s3://direct import --name tree "$TMP/src"
        before=$(rgw_list_full direct | grep -v -e '^roots/' -e '^roots.index ')
        sleep 0.01 # a later LastModified for any object written again
        casfs_ok "import to s3 again" --store s3://direct import --name tree "$TMP/src"
        check_eq "a second import to s3 sends no object again" \
                "$(rgw_list_full direct | grep -v -e '^roots/' -e '^roots.index ')" "$before"
        ;;
file-import-again)
        objects() { (cd "$1" && find chunks blobs dirs -type f -printf '%i %s %p\n' | sort -k3); }
        casfs_ok "import straight to file://" --store "file://$TMP/r" import --name tree "$TMP/src"
        before=$(objects "$TMP/r")
        casfs_ok "import to file:// again" --store "file://$TMP/r" import --name tree "$TMP/src"
        check_eq "a second import to file:// writes no object again" "$(objects "$TMP/r")" "$before"
        ;;
*)
        echo "no such case: $case" >&2
        exit 99
        ;;
esac

finish
