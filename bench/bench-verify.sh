#!/usr/bin/env bash
# Benchmark of verification on one large blob: a file of random bytes (1 GiB
# by default, made once under the scratch folder) read natively, through
# casfs mount --no-verify and through casfs mount (every byte checked against
# the blob's digest), side by side in one run: random 4 KiB reads (the same
# offsets for each) and a sequential read of the whole file, each cold.
# Prints medians, ratios to native and the ratio verify / no-verify.
#
#   bench/bench-verify.sh [--scratch DIR] [--size SIZE] [--runs N] [--ios N] [--unpinned]
#                         [--casfs PATH] [--only 'native casfs-noverify casfs']
#
# --size: of the blob, as head -c takes it (default 1G); --ios N: random reads
# (default 4000). Pinned (the default) runs the daemon and every measured
# command on CPU 0; --unpinned shows what a user sees.
# Needs root (drop_caches, mounts) and fio.
set -euo pipefail
export LC_ALL=C

prog=bench-verify
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/common.sh"
scratch=/var/tmp/casfs-bench
size=1G
runs=4
ios=4000
seed=1234
pin=(taskset -c 0)
casfs=$repo/build/src/cli/casfs
only=
while [ $# -gt 0 ]; do
        case $1 in
        --size) size=$2; shift 2 ;;
        --ios) ios=$2; shift 2 ;;
        --unpinned) pin=(); shift ;;
        --only) only=$2; shift 2 ;;
        -h|--help) bench_usage; exit 0 ;;
        *) bench_option "$@" || { echo "unknown option $1" >&2; exit 2; }; shift "$took" ;;
        esac
done
all=(native casfs-noverify casfs)
systems=("${all[@]}")
if [ -n "$only" ]; then
        read -r -a systems <<<"$only"
        for s in "${systems[@]}"; do
                [[ " ${all[*]} " == *" $s "* ]] || { echo "bench-verify: unknown system '$s' (one of: ${all[*]})" >&2; exit 2; }
        done
fi
[ "$(id -u)" -eq 0 ] || { echo "bench-verify: needs root (drop_caches, mounts)" >&2; exit 1; }
command -v fio >/dev/null || { echo "bench-verify: needs fio (scripts/install-deps.sh --bench)" >&2; exit 1; }
[[ $size =~ ^[0-9]+[KMG]?$ ]] || { echo "bench-verify: --size takes a number with an optional K, M or G" >&2; exit 2; }
build_casfs

work=$scratch/verify
blob=$work/blob-$size
store=$work/store-$size
mnt=$work/mnt
mkdir -p "$work" "$mnt"
daemon=

cleanup() { stop_daemon; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ! -f "$blob" ]; then
        echo "writing $size of random bytes to $blob ..." >&2
        head -c "$size" /dev/urandom > "$blob.tmp"
        mv "$blob.tmp" "$blob"
fi
bytes=$(stat -c %s "$blob")
[ "$bytes" -ge 4096 ] || { echo "bench-verify: --size must be 4 KiB or more" >&2; exit 2; }
echo "importing into $store ..." >&2
"$casfs" --store "$store" import -q --name blob "$blob" >/dev/null

# mount_sys SYSTEM: mounts it (fresh) and sets file=
mount_sys() {
        cleanup
        daemon=
        case $1 in
        native) file=$blob; return 0 ;;
        casfs) "${pin[@]}" "$casfs" --store "$store" mount -f "$mnt" 2>/dev/null & ;;
        casfs-noverify) "${pin[@]}" "$casfs" --store "$store" mount --no-verify -f "$mnt" 2>/dev/null & ;;
        esac
        daemon=$!
        file=$mnt/blob
        wait_mounted "$1"
}

readseq() { [ "$("${pin[@]}" cat "$file" | wc -c)" -eq "$bytes" ]; }

declare -A res

mapfile -t order < <(measure_order "${systems[@]}")
declare -A count
for run in $(seq 1 "$runs"); do
        for s in "${order[@]}"; do
                echo "run $run: $s" >&2
                k=$(( ${count[$s]:-0} + 1 ))
                count[$s]=$k
                mount_sys "$s"; drop
                before=$(rchar)
                out=$(randread "$file" "$bytes")
                [ -n "$out" ] || { echo "bench-verify: fio failed on $file" >&2; exit 1; }
                read -r "res[$s,cold_rand,$k]" nreads "res[$s,rand_max,$k]" <<<"$out"
                if [ -n "$daemon" ]; then res[$s,rand_bytes,$k]=$(( $(rchar) - before )); fi
                mount_sys "$s"; drop
                res[$s,cold_seq,$k]=$(timed readseq)
        done
done
cleanup

printf '\n%s (%s bytes of random data), %s runs (order: %s), %s\n' "$blob" "$bytes" "$runs" "${order[*]}" "${pin[*]:-unpinned}"
cols=(cold_rand cold_seq)
printf '%-15s %16s %16s %10s %12s\n' "" "cold rand" "cold seq" "rand IOPS" "slowest ms"
declare -A med base
for s in "${systems[@]}"; do
        for m in "${cols[@]}" rand_max rand_bytes; do
                vals=()
                for k in $(seq 1 "${count[$s]}"); do [ -n "${res[$s,$m,$k]:-}" ] && vals+=("${res[$s,$m,$k]}"); done
                [ ${#vals[@]} -gt 0 ] && med[$s,$m]=$(median "${vals[@]}")
        done
        line=$(printf '%-15s' "$s")
        for m in "${cols[@]}"; do
                [ "$s" = native ] && base[$m]=${med[$s,$m]}
                line+=$(printf ' %8.3f (%5s)' "${med[$s,$m]}" "$(ratio "${med[$s,$m]}" "${base[$m]:-}")")
        done
        line+=$(printf ' %10.0f %12.3f' "$(awk -v n="$nreads" -v t="${med[$s,cold_rand]}" 'BEGIN {print (t > 0) ? n / t : 0}')" "${med[$s,rand_max]}")
        echo "$line"
done
echo "time in s (ratio to native); cold rand: $nreads random 4 KiB reads (fio, seed $seed, buffered," \
        "POSIX_FADV_RANDOM), the sum of their latencies; cold seq: cat of the whole file"
print_rand_bytes
if [[ " ${systems[*]} " == *" casfs "* && " ${systems[*]} " == *" casfs-noverify "* ]]; then
        echo "verify / no-verify: cold rand $(ratio "${med[casfs,cold_rand]}" "${med[casfs-noverify,cold_rand]}")," \
                "cold seq $(ratio "${med[casfs,cold_seq]}" "${med[casfs-noverify,cold_seq]}")"
fi
