# Hostile stored data: directories and roots a buggy or malicious writer could
# leave in a store, written raw (no checks) with store-tool. Shared by the CLI
# test (tests/cli/test-hostile.sh) and the mount test (the 'hostile' case of
# tests/mount/test-mount.sh), so that both see exactly the same records.
# Source it after lib.sh with CASFS_STORE and STORE_TOOL set, then call
# hostile_store.
STORE_TOOL=${STORE_TOOL:?set STORE_TOOL to the store-tool binary}
HOSTILE_PROTO=$SOURCE_ROOT/proto

enc() { # enc TYPE TEXT -> hex of the encoded message
        protoc --proto_path="$HOSTILE_PROTO" --encode="tvix.castore.v1.$1" castore.proto <<<"$2" | xxd -p | tr -d '\n'
}
octal() { # the 32 bytes of a hex digest as a text-format string
        sed 's/../\\x&/g' <<<"$1"
}
EMPTY=af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262
# a digest no content has: the key of a record that does not hash to it
FAKE=0000000000000000000000000000000000000000000000000000000000000001
FAKE_TEXT=blake3-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=
# the blob of ok/file ("fine\n")
FINE=$(printf 'fine\n' | b3sum --no-names)

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

# Each a directory that every reader must refuse as corrupt, referenced by a
# root of its own name.
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
        [longname]='files { name: "'"$(printf 'n%.0s' $(seq 1 256))"'" digest: "'"$(octal $EMPTY)"'" }'
        [longtarget]='symlinks { name: "l" target: "'"$(printf 't%.0s' $(seq 1 4096))"'" }'
)
# Roots whose directory record is refused: every case above, bytes that do not
# decode at all (junk) and a record under a digest not its own that names
# itself as its child (selfref).
HOSTILE_CORRUPT_ROOTS=("${!cases[@]}" junk selfref)
# Root records that are refused themselves.
HOSTILE_BAD_ROOTS=(garbage misnamed badtarget)

# hostile_store: imports an intact root 'ok' (ok/file holds "fine\n", the
# original in $TMP/ok), then writes every hostile record:
#   the cases, junk, selfref   see above
#   absurd     a valid directory with a child directory of an absurd size
#              (2^62), to be shown as stored
#   nested     a valid directory holding 'sub' (the selfref record) and 'f'
#              (ok/file's blob): the damage is one level down
#   garbage, misnamed, badtarget   root records that do not decode, name
#              another root ('other'), or hold an empty symlink target
hostile_store() {
        local c d
        mkdir -p "$TMP/ok"
        printf 'fine\n' > "$TMP/ok/file"
        "$CASFS" import --name ok "$TMP/ok" >/dev/null || fail "importing the intact root"

        for c in "${!cases[@]}"; do
                d=$(store_dir "${cases[$c]}") && root "$c" "$d" 1 || fail "storing case $c"
        done
        d=$(printf '\xff\xff\xff\xff\x0a' | b3sum --no-names)
        "$STORE_TOOL" "$CASFS_STORE" put-dir "$d" ffffffff0a && root junk "$d" 0 || fail "storing junk"
        "$STORE_TOOL" "$CASFS_STORE" put-dir "$FAKE" \
                "$(enc Directory 'directories { name: "self" digest: "'"$(octal $FAKE)"'" size: 1 }')" &&
                root selfref "$FAKE" 2 || fail "storing selfref"

        d=$(store_dir 'directories { name: "a" digest: "'"$(octal $EMPTY)"'" size: 4611686018427387904 }') &&
                root absurd "$d" 5 || fail "storing absurd"
        d=$(store_dir 'directories { name: "sub" digest: "'"$(octal $FAKE)"'" size: 2 } files { name: "f" digest: "'"$(octal $FINE)"'" size: 5 }') &&
                root nested "$d" 4 || fail "storing nested"

        "$STORE_TOOL" "$CASFS_STORE" put-root garbage ffff || fail "storing garbage"
        "$STORE_TOOL" "$CASFS_STORE" put-root misnamed "$(enc Node 'symlink { name: "other" target: "x" }')" || fail "storing misnamed"
        "$STORE_TOOL" "$CASFS_STORE" put-root badtarget "$(enc Node 'symlink { name: "badtarget" target: "" }')" || fail "storing badtarget"
}

# hostile_store_aliases: records that are valid on their own but contradict
# intact ones (after hostile_store):
#   wrongsize  a valid directory whose files 'big' (1000) and 'small' (2) name
#              ok/file's blob (5 bytes) with the wrong size
#   zzz        a root record, under the key zzz, of a directory node named
#              'ok' (pointing at the selfref record): it must not shadow the
#              root ok
hostile_store_aliases() {
        local d
        d=$(store_dir 'files { name: "big" digest: "'"$(octal $FINE)"'" size: 1000 } files { name: "small" digest: "'"$(octal $FINE)"'" size: 2 }') &&
                root wrongsize "$d" 2 || fail "storing wrongsize"
        "$STORE_TOOL" "$CASFS_STORE" put-root zzz \
                "$(enc Node 'directory { name: "ok" digest: "'"$(octal $FAKE)"'" size: 2 }')" || fail "storing zzz"
}
