#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds casfs twice
# (normal, and with AddressSanitizer + UndefinedBehaviorSanitizer), runs every
# test in both builds, and ends with 'N passed, N failed, N skipped'.
#   tests/run.sh [--quick]   (--quick: the normal build only)
set -uo pipefail
cd "$(dirname "$0")/.."

quick=false
[ "${1:-}" = --quick ] && quick=true

bash scripts/install-deps.sh --all || exit 1

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0

builds=(build)
$quick || builds+=(build-asan)

for b in "${builds[@]}"; do
        opts=()
        [ "$b" = build-asan ] && opts=(-Db_sanitize=address,undefined -Db_lundef=false)
        if [ ! -f "$b/build.ninja" ]; then
                meson setup "$b" "${opts[@]}" >/dev/null || { echo "meson setup $b failed"; echo "0 passed, 1 failed"; exit 1; }
        fi
        if ! ninja -C "$b" >"$b/ninja.log" 2>&1; then
                cat "$b/ninja.log"
                echo "0 passed, 1 failed"
                exit 1
        fi
        echo "== tests ($b)"
        meson test -C "$b" --print-errorlogs --num-processes 2 --timeout-multiplier "$([ "$b" = build-asan ] && echo 3 || echo 1)" |
                grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout):|FAIL|ERROR' || true
done

# the fuzz targets, each for a bounded time under ASan+UBSan (clang, libFuzzer)
extra=build/extra-results
: > "$extra"
if ! $quick; then
        echo "== fuzzing (${FUZZ_SECONDS:-60}s per target)"
        for t in fuzz-directory fuzz-node fuzz-s3-xml fuzz-fuse-request fuzz-vhost-msg fuzz-virtqueue; do
                if bash tests/fuzz/run-fuzzers.sh "${FUZZ_SECONDS:-60}" "$t"; then
                        echo "libfuzzer-$t PASS" >> "$extra"
                else
                        echo "libfuzzer-$t FAIL" >> "$extra"
                fi
        done
fi

python3 - "$extra" "${builds[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]).read().split('\n'):
    if line.endswith(' PASS'):
        passed += 1
    elif line.endswith(' FAIL'):
        failed += 1
for b in sys.argv[2:]:
    try:
        lines = open(b + '/meson-logs/testlog.json').read().splitlines()
    except OSError:
        failed += 1
        continue
    for line in lines:
        r = json.loads(line)['result']
        if r in ('OK', 'EXPECTEDFAIL'):
            passed += 1
        elif r == 'SKIP':
            skipped += 1
        else:
            failed += 1
print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
sys.exit(1 if failed else 0)
PY
