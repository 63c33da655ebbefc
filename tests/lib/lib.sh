# Shared by the shell tests: checks that count, and a summary that sets the
# exit status. Source it; call `finish` at the end.
set -u
CASFS=${CASFS:?set CASFS to the casfs binary}
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
checks=0
failures=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/casfs-test.XXXXXX")
cleanup_hooks=()
LIB_PID=$BASHPID
on_exit() {
        local h
        # only the test's own shell cleans up: a subshell killed early (a
        # watchdog ended with SIGTERM) may run the EXIT trap it inherited
        [ "$BASHPID" = "$LIB_PID" ] || return 0
        for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
        rm -rf "$TMP"
}
trap on_exit EXIT

fail() {
        failures=$((failures + 1))
        echo "FAIL: $*" >&2
}

# check DESCRIPTION COMMAND...: the command must succeed
check() {
        local what=$1
        shift
        checks=$((checks + 1))
        if ! "$@"; then
                fail "$what"
        fi
}

# check_fails DESCRIPTION COMMAND...: the command must fail (exit status 1 unless EXPECT_RC is set)
check_fails() {
        local what=$1 rc
        shift
        checks=$((checks + 1))
        "$@" && rc=0 || rc=$?
        if [ "$rc" -ne "${EXPECT_RC:-1}" ]; then
                fail "$what (exit status $rc, expected ${EXPECT_RC:-1})"
        fi
}

# check_eq DESCRIPTION GOT WANT
check_eq() {
        checks=$((checks + 1))
        if [ "$2" != "$3" ]; then
                fail "$1: got '$2', expected '$3'"
        fi
}

finish() {
        echo "$(basename "$0"): $checks checks, $failures failed" >&2
        [ "$checks" -gt 0 ] && [ "$failures" -eq 0 ]
}

# flip_byte FILE OFFSET: flips the lowest bit of one byte, in place
flip_byte() {
        local b
        b=$(od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' ')
        printf "\\$(printf '%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
