#!/usr/bin/env bash
# Directories and roots written by a buggy or malicious writer: every command
# gives a clean error (exit 1, a message), never a crash, a hang or wrong data.
# The records are those of tests/lib/hostile.sh (the mount test uses them too).
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C
. "$SOURCE_ROOT/tests/lib/hostile.sh"
hostile_store
hostile_store_aliases

for c in "${!cases[@]}"; do
        check_fails "ls of hostile directory ($c)" "$CASFS" ls "$c"
        msg=$("$CASFS" ls "$c" 2>&1)
        check "clean message ($c)" grep -q "corrupt" <<<"$msg"
        check_fails "cat below hostile directory ($c)" "$CASFS" cat "$c/a"
        check_fails "stat below hostile directory ($c)" "$CASFS" stat "$c/x"
done

check_fails "ls of undecodable bytes" "$CASFS" ls junk
check_fails "ls of a self-referencing record" "$CASFS" ls selfref
check_fails "ls deep into a self-reference" "$CASFS" ls selfref/self/self/self

# an absurd size on a valid directory: shown as stored, no crash
check "ls of a directory with an absurd child size" "$CASFS" ls absurd

# damage one level down: the valid directory lists, its damaged child does not
check_eq "ls of a valid directory above a corrupt one" "$("$CASFS" ls nested | cut -f4 | tr '\n' ' ')" "f sub "
check_fails "ls of the corrupt directory below" "$CASFS" ls nested/sub
check "a file next to it reads" cmp -s <("$CASFS" cat nested/f) "$TMP/ok/file"

# a file whose record gives its blob the wrong size: no byte of it
check_fails "cat of a file recorded larger than its blob" "$CASFS" cat wrongsize/big
check_fails "cat of a file recorded smaller than its blob" "$CASFS" cat wrongsize/small
check_eq "and nothing written" "$("$CASFS" cat wrongsize/big wrongsize/small 2>/dev/null | wc -c)" 0

# hostile root records
check "roots lists despite hostile records" "$CASFS" roots
check_fails "stat of an undecodable root" "$CASFS" stat garbage
check_fails "stat of a root whose record names another" "$CASFS" stat misnamed
check_fails "stat of a root with an empty target" "$CASFS" stat badtarget
check_fails "stat of a root whose record names the root ok" "$CASFS" stat zzz
check_eq "ok is still the intact root" "$("$CASFS" ls ok | cut -f4)" file
listed=$("$CASFS" roots | cut -f1)
check_eq "roots lists ok once (zzz names it)" "$(grep -cx ok <<<"$listed")" 1
check_eq "roots leaves out the refused records" "$(grep -cxE 'garbage|misnamed|other|badtarget|zzz' <<<"$listed")" 0

# fsck reports each damaged directory, and nothing crashed along the way
out=$("$CASFS" fsck 2>&1)
rc=$?
check_eq "fsck exit status" "$rc" 1
check "fsck names the self-referencing record" grep -q "corrupt directory $FAKE_TEXT" <<<"$out"
check "fsck names the wrong sizes" grep -q "referenced with sizes 5 and 1000 (root wrongsize)" <<<"$out"
for c in "${HOSTILE_BAD_ROOTS[@]}" zzz; do
        check "fsck names the refused root record $c" grep -qx "corrupt root record $c" <<<"$out"
done
check "intact root still reads" cmp -s <("$CASFS" cat ok/file) "$TMP/ok/file"
check_fails "gc refuses while roots are damaged" "$CASFS" gc
finish
