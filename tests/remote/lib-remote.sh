# Helpers of the remote-store tests (sourced after tests/lib/lib.sh).
REMOTE_DIR=$SOURCE_ROOT/tests/remote
export LC_ALL=C
# a CA bundle of the environment must not help or hinder: the tests pass their own
unset CASFS_CA_BUNDLE AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN

# Every command's output is kept here too, to check at the end that no secret leaked.
ALL_OUTPUT=$TMP/all-output
: >"$ALL_OUTPUT"

# run OUT ERR COMMAND...: runs it bounded by `timeout 60` (a hang is a
# failure of its own), stdout to OUT, stderr to ERR; returns its status
run() {
        local out=$1 err=$2 rc
        shift 2
        timeout -k 5 "${RUN_TIMEOUT:-60}" "$@" >"$out" 2>"$err" && rc=0 || rc=$?
        cat "$out" "$err" >>"$ALL_OUTPUT" 2>/dev/null
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
                fail "HANG: '$*' did not end within ${RUN_TIMEOUT:-60} s"
        fi
        return "$rc"
}

# casfs_ok DESCRIPTION ARGS...: casfs ARGS must succeed; its stdout is in $TMP/out
casfs_ok() {
        local what=$1
        shift
        checks=$((checks + 1))
        if ! run "$TMP/out" "$TMP/err" "$CASFS" "$@"; then
                fail "$what: casfs $* failed: $(head -c 2000 "$TMP/err")"
                return 1
        fi
}

# casfs_fails DESCRIPTION PATTERN ARGS...: casfs ARGS must exit 1 with
# exactly one line on stderr (at most $ERR_LINES_MAX when set) matching
# PATTERN (grep -E -i), and write nothing to stdout (unless $STDOUT_OK is set)
casfs_fails() {
        local what=$1 pattern=$2 rc
        shift 2
        checks=$((checks + 1))
        run "$TMP/out" "$TMP/err" "$CASFS" "$@" && rc=0 || rc=$?
        if [ "$rc" -ne 1 ]; then
                fail "$what: exit status $rc, expected 1 (stderr: $(head -c 1000 "$TMP/err"))"
                return 1
        fi
        if [ "$(wc -l <"$TMP/err")" -lt 1 ] || [ "$(wc -l <"$TMP/err")" -gt "${ERR_LINES_MAX:-1}" ]; then
                fail "$what: expected ${ERR_LINES_MAX:-one} line(s) on stderr, got: $(head -c 2000 "$TMP/err")"
                return 1
        fi
        if ! grep -E -i -q -- "$pattern" "$TMP/err"; then
                fail "$what: the error does not match /$pattern/: $(cat "$TMP/err")"
                return 1
        fi
        if [ -s "$TMP/out" ] && [ -z "${STDOUT_OK:-}" ]; then
                fail "$what: wrote to stdout: $(head -c 200 "$TMP/out" | od -c | head -n 3)"
                return 1
        fi
}

# sorted_lines TEXT: the lines sorted
sorted_lines() { printf '%s\n' "$1" | sort; }

# check_files STORE NAME SRC: every regular file under SRC reads back byte
# for byte through `casfs --store STORE cat NAME/PATH...` (one cat for all,
# compared with the files in the same order; one cat per file to name those
# that differ)
check_files() {
        local store=$1 name=$2 src=$3 rel bad=0
        local -a rels=() args=()
        mapfile -d '' rels < <(cd "$src" && find . -type f -printf '%P\0' | sort -z)
        for rel in "${rels[@]}"; do args+=("$name/$rel"); done
        checks=$((checks + 1))
        if timeout 120 "$CASFS" --store "$store" cat "${args[@]}" 2>>"$TMP/cat-err" |
                cmp -s - <(cd "$src" && cat -- "${rels[@]}"); then
                return 0
        fi
        for rel in "${rels[@]}"; do
                if ! timeout 60 "$CASFS" --store "$store" cat "$name/$rel" 2>>"$TMP/cat-err" | cmp -s - "$src/$rel"; then
                        bad=$((bad + 1))
                        [ "$bad" -gt 3 ] || echo "differs: $name/$rel" >&2
                fi
        done
        fail "${bad} of ${#rels[@]} files of $name read back wrong from $store$([ "$bad" -gt 0 ] || echo ' (all together)')"
}

# fsck_clean STORE: casfs fsck of a local store finds nothing
fsck_clean() {
        checks=$((checks + 1))
        if ! run "$TMP/fsck-out" "$TMP/fsck-err" "$CASFS" --store "$1" fsck; then
                fail "fsck of $1: $(cat "$TMP/fsck-out" "$TMP/fsck-err" | head -c 2000)"
        fi
}

# local_roots STORE: 'NAME TYPE DIGEST SIZE' lines of a store
local_roots() { "$CASFS" --store "$1" roots 2>&1; }

# no_roots STORE: the local store does not exist or has no root
no_roots() { [ ! -e "$1" ] || [ -z "$("$CASFS" --store "$1" roots 2>/dev/null)" ]; }

# no_secret SECRET: nothing any command printed contains SECRET
no_secret() {
        checks=$((checks + 1))
        if grep -q -F -- "$1" "$ALL_OUTPUT"; then
                fail "a secret key appears in the output: $(grep -F -- "$1" "$ALL_OUTPUT" | head -n 3)"
        fi
}

# make_tree DIR: a tree with every kind of node (gen-tree.sh), files of
# several chunks (casfs's chunks are 128-512 KiB), many small files and
# content shared between files
make_tree() {
        local d=$1 i
        "$SOURCE_ROOT/tests/lib/gen-tree.sh" "$d"
        head -c 3000000 /dev/urandom >"$d/three-mib.bin"
        mkdir -p "$d/many"
        for i in $(seq 1 ${MANY_FILES:-120}); do
                head -c $(((i * 7919) % 20000)) /dev/urandom >"$d/many/f$i"
        done
        cp "$d/many/f7" "$d/many/same-as-f7"
        # a file whose chunks recur (the same 600 KiB twice)
        head -c 600000 /dev/urandom >"$TMP/half"
        cat "$TMP/half" "$TMP/half" >"$d/repeats.bin"
}

# source_store: the local store $TMP/a (A) with two roots: "tree", the tree
# make_tree makes in $TMP/src, and "lonely", $TMP/lonely.bin, a file of
# several chunks; want_tree and want_lonely are what their imports printed
# (NAME DIGEST), want both lines sorted
source_store() {
        make_tree "$TMP/src"
        head -c 1500000 /dev/urandom >"$TMP/lonely.bin"
        A=$TMP/a
        casfs_ok "import" --store "$A" import --name tree "$TMP/src"
        want_tree=$(cat "$TMP/out")
        casfs_ok "import a file" --store "$A" import --name lonely "$TMP/lonely.bin"
        want_lonely=$(cat "$TMP/out")
        want=$(sorted_lines "$want_tree
$want_lonely")
}

# hostile_server_start DIR [OPTION...]: hostile-server.py (with its OPTIONs)
# serving the layout in DIR, stopped on exit (stop_server); sets U to its
# address. Fails when it does not start (its output is in $TMP/server.out).
hostile_server_start() {
        local dir=$1
        shift
        python3 "$REMOTE_DIR/hostile-server.py" "$@" --port-file "$TMP/port" "$dir" >"$TMP/server.out" 2>&1 &
        SERVER_PID=$!
        cleanup_hooks+=(stop_server)
        for _ in $(seq 1 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
        [ -s "$TMP/port" ] || return 1
        U=http://127.0.0.1:$(cat "$TMP/port")
}
stop_server() { kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; }
