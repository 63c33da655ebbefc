#!/usr/bin/env bash
# A copy to file:// killed while it writes leaves nothing among the objects
# (chunks/b3/HHHH/, blobs/b3/HHHH/, where readers list and web servers serve
# them): objects are written unnamed and linked in whole; a later copy
# completes the store.
. "$(dirname "$0")/../lib/lib.sh"
. "$SOURCE_ROOT/tests/remote/lib-remote.sh"

mkdir -p "$TMP/src"
for i in $(seq 1 100); do head -c $((200000 + i * 4000)) /dev/urandom >"$TMP/src/f$i"; done
casfs_ok "import" --store "$TMP/a" import --name tree "$TMP/src"
# kills later and later, each into a fresh folder, and looks for debris
# after each kill that landed while the copy ran
landed=0
for round in $(seq 1 20); do
        rm -rf "$TMP/dst"
        "$CASFS" copy --jobs 2 "$TMP/a" "file://$TMP/dst" >/dev/null 2>&1 &
        pid=$!
        sleep "$(awk -v r="$round" 'BEGIN {printf "%.3f", 0.03 * r}')"
        kill -KILL "$pid" 2>/dev/null && landed=$((landed + 1))
        wait "$pid" 2>/dev/null
        check_eq "no temporary file left by the kill (round $round)" \
                "$(cd "$TMP/dst" 2>/dev/null && find . -name '.casfs-tmp-*' | head -n 3)" ""
done
echo "the kill landed while the copy ran in $landed of 20 rounds" >&2
check "at least one kill landed while the copy ran" test "$landed" -ge 1
casfs_ok "the copy after the last kill" copy "$TMP/a" "file://$TMP/dst"
check "the store is complete (check-layout.py)" python3 "$SOURCE_ROOT/tests/remote/check-layout.py" "$TMP/dst"
casfs_ok "copy back" copy "file://$TMP/dst" "$TMP/b"
check_eq "the same root copied back" "$("$CASFS" --store "$TMP/b" roots)" "$("$CASFS" --store "$TMP/a" roots)"

finish
