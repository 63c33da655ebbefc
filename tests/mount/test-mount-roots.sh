#!/usr/bin/env bash
# A mount of only the roots a job needs (--root NAME, --roots-from FILE),
# against real mounts: test-mount-roots.sh CASE
#   filter      only the listed roots exist at the top: lookups, listings
#   roots-from  the list from a file: comments, blank lines, blanks around names
#   errors      a listed root missing from the store, an invalid name, an
#               unreadable file: one line each, the right exit status, nothing mounted
#   follow      while mounted: a listed root replaced shows its new content, a
#               listed root removed goes, an unlisted root added never shows
#   helper      mount.casfs -o root=NAME,roots_from=FILE
#   remote      the same filter over a file:// store
#   virtiofs    virtiofs --root: refused at start when missing or invalid
. "$(dirname "$0")/lib-mount.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C
case_name=${1:?which case}

# roots a, b, c (each a folder with a file f holding its letter), "x#y"
# and "with space" (folders), and a file root "hello"
roots() {
        local n
        for n in a b c "x#y" "with space"; do
                mkdir -p "$TMP/src/$n"
                echo "$n" > "$TMP/src/$n/f"
        done
        echo hello > "$TMP/src/hello"
        "$CASFS" import "$TMP/src/a" "$TMP/src/b" "$TMP/src/c" "$TMP/src/x#y" "$TMP/src/with space" \
                "$TMP/src/hello" >/dev/null || fail "import"
}

not_mounted() {
        ! grep -q " $MNT fuse" /proc/mounts
}

# the top's names, on one line
top() {
        ls -A "$MNT" | tr '\n' ' '
}

case $case_name in
filter)
        roots
        start_mount --root a --root b
        check_eq "a listed root reads" "$(cat "$MNT/a/f")" a
        check_eq "so does the other" "$(cat "$MNT/b/f")" b
        check_eq "an unlisted root is ENOENT" "$(errno_of stat "$MNT/c")" ENOENT
        check_eq "so is a file root not listed" "$(errno_of read "$MNT/hello")" ENOENT
        check_eq "a name no root has" "$(errno_of stat "$MNT/nope")" ENOENT
        check_eq "listing the top is still EPERM without --list-root" "$(errno_of listdir "$MNT")" EPERM
        stop_mount
        # given twice, and in any order: each once, in name order
        start_mount --list-root --root b --root a --root b
        check_eq "--list-root lists just them" "$(top)" "a b "
        check_eq "ls -l too (READDIRPLUS)" "$(ls -l "$MNT" | awk 'NR > 1 {print $NF}' | tr '\n' ' ')" "a b "
        check_eq "find sees just them" "$(cd "$MNT" && find . -mindepth 1 | sort | tr '\n' ' ')" \
                "./a ./a/f ./b ./b/f "
        check_eq "after the listing, an unlisted root is still ENOENT" "$(errno_of stat "$MNT/c")" ENOENT
        stop_mount
        # a file root and names with '#' and a space, by --root
        start_mount --list-root --root hello --root "x#y" --root "with space"
        check_eq "a file root, '#' and a space in names" "$(top)" "hello with space x#y "
        check_eq "the file root reads" "$(cat "$MNT/hello")" hello
        check_eq "the root with a space reads" "$(cat "$MNT/with space/f")" "with space"
        check_eq "a is not there" "$(errno_of stat "$MNT/a")" ENOENT
        stop_mount
        # a long list, listed over many READDIRPLUS replies: 400 names, 300
        # of them roots (the other 100 removed after the start)
        mkdir -p "$TMP/many"
        for k in $(seq 1000 1399); do echo "$k" > "$TMP/many/r$k"; echo "r$k"; done > "$TMP/many.list"
        "$CASFS" import "$TMP/many"/r* >/dev/null || fail "import"
        start_mount --list-root --roots-from "$TMP/many.list" --root a
        # shellcheck disable=SC2046 # names
        "$CASFS" rm $(seq -f 'r%g' 1000 4 1399) || fail "rm"
        want=$( (echo a; seq 1000 1399 | awk '($1 - 1000) % 4 != 0 {print "r" $1}') | tr '\n' ' ')
        ok=false
        for _ in $(seq 1 30); do [ "$(top)" = "$want" ] && { ok=true; break; }; sleep 0.1; done
        check "400 listed roots, 100 removed: the listing shows the other 300, each once" $ok
        check_eq "ls -l agrees" "$(ls -l "$MNT" | awk 'NR > 1 {print $NF}' | tr '\n' ' ')" "$want"
        check_eq "a removed one is ENOENT" "$(errno_of stat "$MNT/r1000")" ENOENT
        check_eq "a kept one reads" "$(cat "$MNT/r1399")" 1399
        ;;
roots-from)
        roots
        printf '# the inputs of a job\n\n  a  \n\t b\t\r\n   # c is not one\n#c\n\nx#y\n' > "$TMP/list"
        start_mount --list-root --roots-from "$TMP/list"
        check_eq "comments, blank lines and blanks around names left out" "$(top)" "a b x#y "
        check_eq "a root of the file reads" "$(cat "$MNT/b/f")" b
        check_eq "one commented out is ENOENT" "$(errno_of stat "$MNT/c")" ENOENT
        stop_mount
        # with --root: the roots of both, a name in both once
        printf 'a\nhello\n' > "$TMP/list2"
        start_mount --list-root --root c --roots-from "$TMP/list2" --root a
        check_eq "--root and --roots-from add up" "$(top)" "a c hello "
        stop_mount
        # two files add up too
        start_mount --list-root --roots-from "$TMP/list" --roots-from "$TMP/list2"
        check_eq "two files add up" "$(top)" "a b hello x#y "
        stop_mount
        # a file naming none: an empty top
        printf '# nothing\n\n' > "$TMP/none"
        start_mount --list-root --roots-from "$TMP/none"
        check_eq "a file naming no root: an empty top" "$(top)" ""
        check_eq "and a root is ENOENT" "$(errno_of stat "$MNT/a")" ENOENT
        stop_mount
        # a file without a final newline
        printf 'c' > "$TMP/last"
        start_mount --list-root --roots-from "$TMP/last"
        check_eq "the last line without a newline" "$(top)" "c "
        ;;
errors)
        roots
        # a listed root the store lacks: one line naming it, exit 1, nothing mounted
        "$CASFS" mount -f --root a --root zz "$MNT" > "$TMP/out" 2> "$TMP/err"
        check_eq "a missing root: exit status 1" "$?" 1
        check_eq "one line" "$(wc -l < "$TMP/err")" 1
        check "it names the root" grep -q "no root named 'zz'" "$TMP/err"
        check "nothing mounted" not_mounted
        # in the background too (the daemon would say so only in its log)
        "$CASFS" mount --root zz "$MNT" 2> "$TMP/err"
        check_eq "in the background: exit status 1" "$?" 1
        check "and the line, on the caller's stderr" grep -q "no root named 'zz'" "$TMP/err"
        check "nothing mounted" not_mounted
        # two missing, one from a file: a line for each
        printf 'a\nyy\n' > "$TMP/list"
        "$CASFS" mount -f --roots-from "$TMP/list" --root zz "$MNT" 2> "$TMP/err"
        check_eq "two missing: exit status 1" "$?" 1
        check_eq "a line for each" "$(grep -c "no root named" "$TMP/err")" 2
        check "naming yy" grep -q "'yy'" "$TMP/err"
        check "and zz" grep -q "'zz'" "$TMP/err"
        check "nothing mounted" not_mounted
        # many missing: the first ten named, then how many more
        seq -f 'missing%g' 10 24 > "$TMP/many-missing"
        "$CASFS" mount -f --roots-from "$TMP/many-missing" "$MNT" 2> "$TMP/err"
        check_eq "15 missing: exit status 1" "$?" 1
        check_eq "ten named, in name order" "$(grep -o "no root named '[^']*'" "$TMP/err" | cut -d"'" -f2 | tr '\n' ' ')" \
                "$(seq -f 'missing%g ' 10 19 | tr -d '\n')"
        check "then how many more" grep -q "and 5 more of the roots given are missing" "$TMP/err"
        check_eq "eleven lines" "$(wc -l < "$TMP/err")" 11
                # invalid names: usage errors naming them
        for bad in "" . .. a/b "$(head -c 256 /dev/zero | tr '\0' n)"; do
                "$CASFS" mount -f --root "$bad" "$MNT" 2> "$TMP/err"
                check_eq "--root '${bad:0:20}': exit status 2" "$?" 2
                check_eq "one line" "$(wc -l < "$TMP/err")" 1
                check "naming it" grep -qF "'$bad' is not a valid root name" "$TMP/err"
        done
        check "nothing mounted" not_mounted
        printf 'a\n# fine\n../etc\n' > "$TMP/bad-list"
        "$CASFS" mount -f --roots-from "$TMP/bad-list" "$MNT" 2> "$TMP/err"
        check_eq "an invalid name in the file: exit status 2" "$?" 2
        check "the line names the file, the line and the name" \
                grep -qF "$TMP/bad-list:3: '../etc' is not a valid root name" "$TMP/err"
        # a file that cannot be read
        "$CASFS" mount -f --roots-from "$TMP/no-such-list" "$MNT" 2> "$TMP/err"
        check_eq "a missing file: exit status 1" "$?" 1
        check_eq "one line" "$(wc -l < "$TMP/err")" 1
        check "naming the file" grep -qF "$TMP/no-such-list: No such file or directory" "$TMP/err"
        "$CASFS" mount -f --roots-from "$TMP" "$MNT" 2> "$TMP/err"
        check_eq "a folder as the file: exit status 1" "$?" 1
        check "naming it" grep -qF "$TMP: Is a directory" "$TMP/err"
        check "nothing mounted" not_mounted
        # the store's own errors come first: a mistyped store is said as ever
        "$CASFS" --store "$TMP/no-store" mount -f --root a "$MNT" 2> "$TMP/err"
        check_eq "a mistyped store: exit status 1" "$?" 1
        check "said as ever" grep -q "no store there" "$TMP/err"
        ;;
follow)
        roots
        start_mount --list-root --root a --root b
        check_eq "at first" "$(top)" "a b "
        check_eq "a reads" "$(cat "$MNT/a/f")" a
        # a listed root replaced: its new content shows
        mkdir -p "$TMP/a2"
        echo new > "$TMP/a2/g"
        "$CASFS" import --name a "$TMP/a2" >/dev/null || fail "import"
        ok=false
        for _ in $(seq 1 30); do [ "$(cat "$MNT/a/g" 2>/dev/null)" = new ] && { ok=true; break; }; sleep 0.1; done
        check "a listed root replaced shows its new content" $ok
        check_eq "and its old file is gone" "$(errno_of stat "$MNT/a/f")" ENOENT
        # a listed root removed: it goes
        "$CASFS" rm b
        ok=false
        for _ in $(seq 1 30); do [ ! -e "$MNT/b" ] && { ok=true; break; }; sleep 0.1; done
        check "a listed root removed goes" $ok
        check_eq "from the listing too" "$(top)" "a "
        # unlisted roots added: never there, even after the refresh (once a second)
        "$CASFS" import --name d "$TMP/src/c" >/dev/null || fail "import"
        mkdir -p "$TMP/c2"
        echo c2 > "$TMP/c2/f"
        "$CASFS" import --name c "$TMP/c2" >/dev/null || fail "import"
        sleep 2
        check_eq "an unlisted root added is ENOENT" "$(errno_of stat "$MNT/d")" ENOENT
        check_eq "an unlisted root replaced too" "$(errno_of stat "$MNT/c")" ENOENT
        check_eq "the listing shows neither" "$(top)" "a "
        # the listed root removed comes back: it shows again, as roots do
        "$CASFS" import --name b "$TMP/src/c" >/dev/null || fail "import"
        ok=false
        for _ in $(seq 1 30); do [ "$(cat "$MNT/b/f" 2>/dev/null)" = c ] && { ok=true; break; }; sleep 0.1; done
        check "a listed root added again shows" $ok
        ok=false
        for _ in $(seq 1 30); do [ "$(top)" = "a b " ] && { ok=true; break; }; sleep 0.1; done
        check "in the listing too" $ok
        check "the daemon is alive" kill -0 "$DAEMON_PID"
        ;;
helper)
        roots
        helpers=$TMP/helpers
        mkdir -p "$helpers"
        ln -s "$CASFS" "$helpers/mount.casfs"
        printf '# from a file\nb\n' > "$TMP/list"
        check_eq "-f shows the casfs command" \
                "$("$helpers/mount.casfs" "$CASFS_STORE" "$MNT" -f -o list_root,root=a,roots_from="$TMP/list" 2>&1)" \
                "mount.casfs: casfs --store $CASFS_STORE mount --list-root --root a --roots-from $TMP/list $MNT"
        EXPECT_RC=1 check_fails "root=.. is a usage error" "$helpers/mount.casfs" "$CASFS_STORE" "$MNT" -o root=..
        EXPECT_RC=1 check_fails "root without a value" "$helpers/mount.casfs" "$CASFS_STORE" "$MNT" -o root
        EXPECT_RC=32 check_fails "a missing root fails the mount" \
                "$helpers/mount.casfs" "$CASFS_STORE" "$MNT" -o root=zz
        check "nothing mounted by them" not_mounted
        "$helpers/mount.casfs" "$CASFS_STORE" "$MNT" -o ro,list_root,root=a,root=hello,roots_from="$TMP/list"
        check_eq "mount.casfs mounts" "$?" 0
        DAEMON_PID=$(pgrep -f -- "casfs.* $MNT( |\$)" | head -n 1)
        check_eq "the listed roots only" "$(top)" "a b hello "
        check_eq "an unlisted one is ENOENT" "$(errno_of stat "$MNT/c")" ENOENT
        check "umount" umount "$MNT"
        for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        check "which ends the daemon" bash -c "! kill -0 $DAEMON_PID 2>/dev/null"
        DAEMON_PID=
        ;;
remote)
        roots
        REMOTE=file://$TMP/remote
        "$CASFS" copy "$CASFS_STORE" "$REMOTE" >/dev/null || fail "copy to $REMOTE"
        CASFS_STORE=$REMOTE start_mount --list-root --root a --root hello
        check_eq "over file://: the listed roots only" "$(top)" "a hello "
        check_eq "a listed root reads" "$(cat "$MNT/a/f")" a
        check_eq "an unlisted one is ENOENT" "$(errno_of stat "$MNT/b")" ENOENT
        stop_mount
        CASFS_STORE=$REMOTE "$CASFS" mount -f --root zz "$MNT" 2> "$TMP/err"
        check_eq "a missing root over file://: exit status 1" "$?" 1
        check "naming it" grep -q "no root named 'zz'" "$TMP/err"
        check "nothing mounted" not_mounted
        # mount(8)'s helper with a remote's options: its cache is where cache= says
        helpers=$TMP/helpers
        mkdir -p "$helpers"
        ln -s "$CASFS" "$helpers/mount.casfs"
        check_eq "mount.casfs -f maps the remote options" \
                "$("$helpers/mount.casfs" "$REMOTE" "$MNT" -f -o cache="$TMP/hcache",cache_size=1M,jobs=4,timeout=3,refresh=5,s3_endpoint=http://127.0.0.1:1,_netdev 2>&1)" \
                "mount.casfs: casfs --store $REMOTE --s3-endpoint http://127.0.0.1:1 mount --cache $TMP/hcache --cache-size 1M --jobs 4 --timeout 3 --refresh 5 $MNT"
        EXPECT_RC=1 check_fails "a bad cache_size is a usage error" \
                "$helpers/mount.casfs" "$REMOTE" "$MNT" -o cache="$TMP/hcache",cache_size=lots
        "$helpers/mount.casfs" "$REMOTE" "$MNT" -o ro,root=a,cache="$TMP/hcache",cache_size=1M,jobs=4,timeout=3,refresh=5
        check_eq "mount.casfs mounts a remote store" "$?" 0
        DAEMON_PID=$(pgrep -f -- "casfs.* $MNT( |\$)" | head -n 1)
        check_eq "which reads" "$(cat "$MNT/a/f")" a
        check "through the cache given, a store of its own" "$CASFS" --store "$TMP/hcache" ls a
        check "umount" umount "$MNT"
        for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        check "which ends the daemon" bash -c "! kill -0 $DAEMON_PID 2>/dev/null"
        DAEMON_PID=
        ;;
virtiofs)
        roots
        sock=$TMP/vfs.sock
        "$CASFS" virtiofs --socket "$sock" --root a --root zz 2> "$TMP/err"
        check_eq "virtiofs, a missing root: exit status 1" "$?" 1
        check "naming it" grep -q "no root named 'zz'" "$TMP/err"
        check "no socket left" test ! -e "$sock"
        "$CASFS" virtiofs --socket "$sock" --root a/b 2> "$TMP/err"
        check_eq "virtiofs, an invalid name: exit status 2" "$?" 2
        check "naming it" grep -qF "'a/b' is not a valid root name" "$TMP/err"
        "$CASFS" virtiofs --socket "$sock" --roots-from "$TMP/nope" 2> "$TMP/err"
        check_eq "virtiofs, a missing file: exit status 1" "$?" 1
        check "no socket left" test ! -e "$sock"
        ;;
*)
        fail "unknown case $case_name"
        ;;
esac
finish
