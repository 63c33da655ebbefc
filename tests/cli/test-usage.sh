#!/usr/bin/env bash
# casfs as a user meets it: a mistyped store is an error, --version, the
# manual page (rendered, naming every command and option of --help) and the
# bash completion.
. "$(dirname "$0")/../lib/lib.sh"
export LC_ALL=C
export CASFS_STORE=$TMP/store
mkdir -p "$TMP/tree/sub" "$TMP/mnt"
echo hi > "$TMP/tree/sub/file"
"$CASFS" import --name tree "$TMP/tree" >/dev/null || fail "import"
"$CASFS" import --name other "$TMP/tree/sub" >/dev/null || fail "import"

# every command but import, given a store that is not there
typo=$TMP/typo-store
for cmd in "roots" "ls tree" "cat tree/sub/file" "stat tree" "rm tree" "fsck" "gc" "gc --dry-run" \
        "mount $TMP/mnt" "mount -f $TMP/mnt" "virtiofs --socket $TMP/vfs.sock"; do
        # shellcheck disable=SC2086 # the command's words
        "$CASFS" --store "$typo" $cmd > "$TMP/out" 2> "$TMP/err"
        check_eq "$cmd, a mistyped store: exit status" "$?" 1
        check_eq "$cmd: one line" "$(wc -l < "$TMP/err")" 1
        check "$cmd: naming the store" grep -qF "$typo: no store there" "$TMP/err"
        check_eq "$cmd: nothing on stdout" "$(cat "$TMP/out")" ""
        check "$cmd: the store was not created" test ! -e "$typo"
done
# a folder that exists but holds no store
mkdir "$TMP/empty"
EXPECT_RC=1 check_fails "roots in an empty folder" "$CASFS" --store "$TMP/empty" roots
check_eq "which stays empty" "$(ls -A "$TMP/empty")" ""
# the same through $CASFS_STORE
EXPECT_RC=1 check_fails "roots, a mistyped \$CASFS_STORE" env CASFS_STORE="$typo" "$CASFS" roots
# import creates it
check "import creates a new store" "$CASFS" --store "$typo" import --name x "$TMP/tree/sub/file"
check_eq "which roots then lists" "$("$CASFS" --store "$typo" roots | cut -f1)" x

check "--version" bash -c "'$CASFS' --version | grep -qE '^casfs [0-9]+\.[0-9]+\.[0-9]+$'"

# the commands, and each command's options, as --help lists them
commands=$("$CASFS" --help | awk '/^Commands:/ {on = 1; next} on && /^$/ {on = 0} on {print $1}')
check "--help lists commands" test "$(echo "$commands" | wc -w)" -ge 10
options_of() {
        "$CASFS" "$1" --help | grep -oE -- '(^|[ ,[])--[a-z][a-z0-9-]*' | sed 's/^[ ,[]//' | grep -vxE -- '--store|--s3-endpoint|--ca-bundle' | sort -u
}

# the manual page, built from docs/casfs.1.scd
if [ -n "${CASFS_MAN:-}" ] && [ -f "$CASFS_MAN" ]; then
        if command -v man >/dev/null; then
                MANWIDTH=200 man -l "$CASFS_MAN" 2> "$TMP/man.err" > "$TMP/man.txt"
                check_eq "man -l renders it" "$?" 0
                check_eq "without warnings" "$(grep -v '^$' "$TMP/man.err")" ""
                check "it is casfs(1)" grep -q '^casfs(1)' "$TMP/man.txt"
                # words that groff broke at the end of a line, joined again
                sed ':a;N;$!ba;s/\xe2\x80\x90\n *//g;s/-\n *//g' "$TMP/man.txt" > "$TMP/man.flat"
                for c in $commands; do
                        check "the manual has a section on $c" grep -qE "^ +$c( |$)" "$TMP/man.txt"
                        for o in $(options_of "$c"); do
                                check "the manual names $c $o" grep -qE -- "(^|[^a-z0-9-])$o([^a-z0-9-]|$)" "$TMP/man.flat"
                        done
                done
                for o in $("$CASFS" --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
                        check "the manual names the global option $o" grep -qE -- "(^|[^a-z0-9-])$o([^a-z0-9-]|$)" "$TMP/man.flat"
                done
                check "the manual names mount.casfs" grep -q 'mount.casfs' "$TMP/man.txt"
                check "the manual says where the daemon logs" grep -q '/var/log/casfs.log' "$TMP/man.txt"
        else
                fail "man is not installed (scripts/install-deps.sh installs man-db)"
        fi
else
        fail "no manual page built (CASFS_MAN=${CASFS_MAN:-}; scdoc missing?)"
fi

# bash completion: commands, options and root names
comp=$SOURCE_ROOT/completion/casfs
complete_words() { # complete_words WORD...: what completing the last word offers
        PATH=$(dirname "$CASFS"):$PATH bash -c '
                . "$1"; shift
                COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
                _casfs
                printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@" 2>&1 | sort
}
check "the completion script loads" bash -c ". '$comp' && complete -p casfs"
# offered: a superset of what --help lists (it also knows the commands and
# options that need libraries this build may lack)
missing_from() { # missing_from OFFERED WANTED...: the wanted words not offered
        local w
        for w in "${@:2}"; do grep -qxF -- "$w" <<<"$1" || echo "$w"; done
}
check_eq "it completes every command" "$(missing_from "$(complete_words casfs '')" $commands)" ""
check_eq "and a prefix" "$(complete_words casfs f | tr '\n' ' ')" "fsck "
for c in $commands; do
        # shellcheck disable=SC2046 # words
        check_eq "it completes the options of $c" "$(missing_from "$(complete_words casfs "$c" -)" $(options_of "$c"))" ""
done
check_eq "root names for cat" "$(complete_words casfs cat '' | tr '\n' ' ')" "other/ tree/ "
check_eq "a prefix of one" "$(complete_words casfs ls t | tr '\n' ' ')" "tree/ "
check_eq "root names for rm, of the store given" \
        "$(complete_words casfs --store "$typo" rm '' | tr '\n' ' ')" "x "
check_eq "root names for mount --root" "$(complete_words casfs mount --root '' | tr '\n' ' ')" "other tree "
check_eq "and for virtiofs --root" "$(complete_words casfs virtiofs --root o | tr '\n' ' ')" "other "
check_eq "the global options" "$(complete_words casfs --s | tr '\n' ' ')" "--s3-endpoint --store "

check "mount.casfs --help" bash -c "'$CASFS' --help >/dev/null && exec -a mount.casfs '$CASFS' --help | grep -q 'Usage: mount.casfs'"
finish
