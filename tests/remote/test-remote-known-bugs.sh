#!/usr/bin/env bash
# Known bugs of remote stores, one case each (test-remote-known-bugs.sh
# CASE): each fails until the bug is fixed. meson counts them as expected
# failures; once a case passes, meson reports an unexpected pass: move its
# checks into the test they belong to and drop the case.
#
#   file-kill-debris  a copy to file:// killed while it writes leaves its
#                     temporary files (.casfs-tmp-*) among the objects
#                     (chunks/b3/HHHH/, blobs/b3/HHHH/), where readers list and
#                     web servers serve them; a later copy does not remove them
. "$(dirname "$0")/../lib/lib.sh"
. "$SOURCE_ROOT/tests/remote/lib-remote.sh"

case=${1:?which case}
case $case in
file-kill-debris)
        mkdir -p "$TMP/src"
        for i in $(seq 1 100); do head -c $((200000 + i * 4000)) /dev/urandom >"$TMP/src/f$i"; done
        casfs_ok "import" --store "$TMP/a" import --name tree "$TMP/src"
        # kills later and later (each into a fresh folder) until one lands
        # while puts are in flight
        for round in $(seq 1 20); do
                rm -rf "$TMP/dst"
                "$CASFS" copy --jobs 2 "$TMP/a" "file://$TMP/dst" >/dev/null 2>&1 &
                pid=$!
                sleep "$(awk -v r="$round" 'BEGIN {printf "%.3f", 0.03 * r}')"
                kill -KILL "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
                [ -z "$(find "$TMP/dst" -name '.casfs-tmp-*' 2>/dev/null | head -n 1)" ] || break
        done
        casfs_ok "the copy after the kills" copy "$TMP/a" "file://$TMP/dst"
        check_eq "no temporary file left among the objects" \
                "$(cd "$TMP/dst" && find chunks blobs dirs roots -name '.casfs-tmp-*' | head -n 3)" ""
        ;;
*)
        echo "no such case: $case" >&2
        exit 99
        ;;
esac

finish
