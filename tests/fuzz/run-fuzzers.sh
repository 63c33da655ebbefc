#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each (default 60) under ASan+UBSan,
# starting from the committed seeds; new inputs go to a scratch folder, crashes
# to build-fuzz/crashes/. Exit status 1 when any target crashed.
#   tests/fuzz/run-fuzzers.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
b=build-fuzz
if [ ! -f "$b/build.ninja" ]; then
        CC=clang meson setup "$b" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
                -Dwerror=false >/dev/null || exit 1
fi
ninja -C "$b" >"$b.log" 2>&1 || { cat "$b.log"; exit 1; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz-directory fuzz-node fuzz-s3-xml fuzz-fuse-request fuzz-vhost-msg fuzz-virtqueue)
mkdir -p "$b/crashes"
failed=0
for t in "${targets[@]}"; do
        work=$(mktemp -d)
        echo "== $t: ${secs}s" >&2
        if UBSAN_OPTIONS=halt_on_error=1 "$b/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
                -artifact_prefix="$b/crashes/$t-" -print_final_stats=1 "$work" "tests/fuzz/corpus/$t" \
                >"$b/$t.log" 2>&1; then
                echo "$t: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$b/$t.log" | grep -o '[0-9]*$') runs)" >&2
        else
                echo "$t: CRASH, see $b/$t.log" >&2
                tail -n 30 "$b/$t.log" >&2
                failed=1
        fi
        rm -rf "$work"
done
exit $failed
