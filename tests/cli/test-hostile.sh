#!/usr/bin/env bash
# Directories and roots written by a buggy or malicious writer: every command
# gives a clean error (exit 1, a message), never a crash, a hang or wrong data.
. "$(dirname "$0")/../lib/lib.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C
STORE_TOOL=${STORE_TOOL:?}
PROTO=$SOURCE_ROOT/proto

mkdir -p "$TMP/ok"
printf 'fine\n' > "$TMP/ok/file"
"$CASFS" import --name ok "$TMP/ok" >/dev/null

enc() { # enc TYPE TEXT -> hex of the encoded message
        protoc --proto_path="$PROTO" --encode="tvix.castore.v1.$1" castore.proto <<<"$2" | xxd -p | tr -d '\n'
}
octal() { # the 32 bytes of a hex digest as a text-format string
        sed 's/../\\x&/g' <<<"$1"
}
EMPTY=af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262

# store_dir TEXT: stores the encoding under its true digest; prints the hex digest
store_dir() {
        local hex digest
        hex=$(enc Directory "$1")
        digest=$(xxd -r -p <<<"$hex" | b3sum --no-names)
        "$STORE_TOOL" "$CASFS_STORE" put-dir "$digest" "$hex"
        echo "$digest"
}
# root NAME HEXDIGEST SIZE: a root directory node pointing there
root() {
        "$STORE_TOOL" "$CASFS_STORE" put-root "$1" "$(enc Node "directory { name: \"$1\" digest: \"$(octal "$2")\" size: $3 }")"
}

# each hostile directory, referenced by a root of its own
declare -A cases=(
        [slash]='files { name: "a/b" digest: "'"$(octal $EMPTY)"'" }'
        [dotdot]='directories { name: ".." digest: "'"$(octal $EMPTY)"'" }'
        [dot]='symlinks { name: "." target: "x" }'
        [nul]='files { name: "a\000b" digest: "'"$(octal $EMPTY)"'" }'
        [empty]='files { name: "" digest: "'"$(octal $EMPTY)"'" }'
        [unsorted]='files { name: "b" digest: "'"$(octal $EMPTY)"'" } files { name: "a" digest: "'"$(octal $EMPTY)"'" }'
        [duplicate]='directories { name: "x" digest: "'"$(octal $EMPTY)"'" } files { name: "x" digest: "'"$(octal $EMPTY)"'" }'
        [shortdigest]='files { name: "a" digest: "abc" }'
        [nultarget]='symlinks { name: "l" target: "a\000b" }'
        [emptytarget]='symlinks { name: "l" target: "" }'
        [overflow]='directories { name: "a" digest: "'"$(octal $EMPTY)"'" size: 18446744073709551615 } directories { name: "b" digest: "'"$(octal $EMPTY)"'" size: 1 }'
)
for c in "${!cases[@]}"; do
        d=$(store_dir "${cases[$c]}") || { fail "storing case $c"; continue; }
        root "$c" "$d" 1
        check_fails "ls of hostile directory ($c)" "$CASFS" ls "$c"
        msg=$("$CASFS" ls "$c" 2>&1)
        check "clean message ($c)" grep -q "corrupt" <<<"$msg"
        check_fails "cat below hostile directory ($c)" "$CASFS" cat "$c/a"
        check_fails "stat below hostile directory ($c)" "$CASFS" stat "$c/x"
done

# bytes that do not decode at all, under their own digest
junk=ffffffff0a
d=$(xxd -r -p <<<"$junk" | b3sum --no-names)
"$STORE_TOOL" "$CASFS_STORE" put-dir "$d" "$junk"
root junk "$d" 0
check_fails "ls of undecodable bytes" "$CASFS" ls junk
# a record under a digest that is not its own (a directory "pointing at itself")
self=$(store_dir 'files { name: "a" digest: "'"$(octal $EMPTY)"'" }')
fake=0000000000000000000000000000000000000000000000000000000000000001
"$STORE_TOOL" "$CASFS_STORE" put-dir "$fake" "$(enc Directory 'directories { name: "self" digest: "'"$(octal $fake)"'" size: 1 }')"
root selfref "$fake" 2
check_fails "ls of a self-referencing record" "$CASFS" ls selfref
check_fails "ls deep into a self-reference" "$CASFS" ls selfref/self/self/self

# an absurd size on a valid directory: shown as stored, no crash
big=$(store_dir 'directories { name: "a" digest: "'"$(octal $EMPTY)"'" size: 4611686018427387904 }')
root absurd "$big" 5
check "ls of a directory with an absurd child size" "$CASFS" ls absurd

# hostile root records
"$STORE_TOOL" "$CASFS_STORE" put-root garbage ffff
"$STORE_TOOL" "$CASFS_STORE" put-root misnamed "$(enc Node 'symlink { name: "other" target: "x" }')"
"$STORE_TOOL" "$CASFS_STORE" put-root badtarget "$(enc Node 'symlink { name: "badtarget" target: "" }')"
check "roots lists despite hostile records" "$CASFS" roots
check_fails "stat of an undecodable root" "$CASFS" stat garbage
check_fails "stat of a root whose record names another" "$CASFS" stat misnamed
check_fails "stat of a root with an empty target" "$CASFS" stat badtarget

# fsck reports each damaged directory, and nothing crashed along the way
out=$("$CASFS" fsck 2>&1)
rc=$?
check_eq "fsck exit status" "$rc" 1
check "fsck names the self-referencing record" grep -q "corrupt directory blake3-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=" <<<"$out"
check "intact root still reads" cmp -s <("$CASFS" cat ok/file) "$TMP/ok/file"
check_fails "gc refuses while roots are damaged" "$CASFS" gc
finish
