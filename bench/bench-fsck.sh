#!/usr/bin/env bash
# Benchmark of fsck against the hashing limit: casfs fsck of a store and b3sum
# over exactly the bytes fsck hashes (every blob file of the store, found with
# find; not the outboards beside them), side by side in one run, cold (sync
# and drop_caches first) and warm (right after the cold run, which is its
# warm-up). Prints medians, bytes/s over the blob bytes and the ratio fsck /
# b3sum (1.00 or less: fsck at least at b3sum speed).
#
#   bench/bench-fsck.sh [--store DIR] [--scratch DIR] [--runs N] [--unpinned] [--casfs PATH]
#
# Default store: the bench scratch store (DIR/store of --scratch, default
# /var/tmp/casfs-bench), made from the default corpus (a copy of /usr/share and
# /usr/lib) when it does not exist yet. Both tools get the same CPUs: CPU 0
# pinned (the default), every online CPU with --unpinned.
# Needs root (drop_caches) and b3sum.
set -euo pipefail
export LC_ALL=C

prog=bench-fsck
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/common.sh"
scratch=/var/tmp/casfs-bench
store=
runs=3
pinned=1
casfs=$repo/build/src/cli/casfs
while [ $# -gt 0 ]; do
        case $1 in
        --store) store=$2; shift 2 ;;
        --unpinned) pinned=; shift ;;
        -h|--help) bench_usage; exit 0 ;;
        *) bench_option "$@" || { echo "unknown option $1" >&2; exit 2; }; shift "$took" ;;
        esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "$prog: --runs takes a positive number" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$prog: needs root (drop_caches)" >&2; exit 1; }
command -v b3sum >/dev/null || { echo "$prog: needs b3sum" >&2; exit 1; }
build_casfs

# The same CPUs for both tools. Pinned: CPU 0 (fsck's workers and every b3sum
# process share it); unpinned: all online CPUs.
if [ -n "$pinned" ]; then
        pin=(taskset -c 0)
        cpus=1
else
        pin=()
        cpus=$(nproc)
fi

if [ -z "$store" ]; then
        store=$scratch/store
        if [ ! -d "$store/blobs" ]; then
                corpus=
                default_corpus
                echo "importing $corpus into $store ..." >&2
                "$casfs" --store "$store" import -q --name corpus "$corpus" >/dev/null
        fi
fi
[ -d "$store/blobs" ] || { echo "$prog: $store is no casfs store (no blobs/ in it)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-fsck.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The bytes fsck hashes: the blob files blobs/ab/cd/<hex> (what it lists).
# Their outboards (<hex>.outboard beside them) are left out of b3sum's files:
# fsck reads those too, to compare each with the outboard the hash yields.
blob_re='\./[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}'
read -r nblobs bytes < <(cd "$store/blobs" && find . -mindepth 3 -maxdepth 3 -type f -regextype posix-extended \
        -regex "$blob_re" -printf '%s\n' | awk '{n++; s += $1} END {printf "%d %.0f\n", n, s}')
[ "$nblobs" -gt 0 ] || { echo "$prog: no blobs in $store" >&2; exit 1; }
read -r nob ob_bytes < <(cd "$store/blobs" && find . -mindepth 3 -maxdepth 3 -type f -name '*.outboard' -printf '%s\n' |
        awk '{n++; s += $1} END {printf "%d %.0f\n", n, s}')
meta_bytes=$(du -sb "$store/meta.lmdb" 2>/dev/null | cut -f1 || echo 0)

# b3sum: what a user would run over the blob files, in the same time: it
# lists them itself (find, as fsck lists the store: that time counts for both)
# and hashes them. It hashes a large file with several threads but small
# files one after the other, so that one process over a store of mostly small
# blobs keeps one CPU busy: it runs as one process per CPU (xargs -P), each
# over batches of 500 files taken as they come, each with --num-threads = the
# CPUs, so that every CPU is busy on small and large blobs alike, as fsck's
# workers keep them.
b3sum_all() (
        cd "$store/blobs" &&
                "${pin[@]}" find . -mindepth 3 -maxdepth 3 -type f -regextype posix-extended -regex "$blob_re" -print0 |
                "${pin[@]}" xargs -0 -P "$cpus" -n 500 b3sum --num-threads "$cpus" > /dev/null
)
# its report is kept: its count of blobs is checked against b3sum's list
casfs_fsck() { "${pin[@]}" "$casfs" --store "$store" fsck > "$work/fsck.out"; }

file=$store # named by timed's warning
declare -A res
for run in $(seq 1 "$runs"); do
        echo "run $run: fsck" >&2
        drop
        res[fsck,cold,$run]=$(timed casfs_fsck)
        res[fsck,warm,$run]=$(timed casfs_fsck)
        echo "run $run: b3sum" >&2
        drop
        res[b3sum,cold,$run]=$(timed b3sum_all)
        res[b3sum,warm,$run]=$(timed b3sum_all)
done
# the same blobs, the same bytes: fsck's count must be find's
summary=$(grep '^fsck: ' "$work/fsck.out" || true)
fsck_blobs=$(sed -n 's/^fsck: [0-9]* roots, \([0-9]*\) blobs.*/\1/p' <<<"$summary")
[ "$fsck_blobs" = "$nblobs" ] ||
        echo "warning: fsck counts ${fsck_blobs:-?} blobs, find $nblobs (${summary:-no summary})" >&2

declare -A med
for t in fsck b3sum; do
        for m in cold warm; do
                vals=()
                for run in $(seq 1 "$runs"); do vals+=("${res[$t,$m,$run]}"); done
                med[$t,$m]=$(median "${vals[@]}")
        done
done
mibs() { awk -v b="$bytes" -v t="$1" 'BEGIN { if (t > 0) printf "%.1f", b / t / 1048576; else print "-" }'; }

printf '\n%s: %s blobs, %s bytes (%.1f MiB) in blob files; %s runs, %s (%s CPU%s)\n' "$store" "$nblobs" \
        "$bytes" "$(echo "$bytes / 1048576" | bc -l)" "$runs" "${pin[*]:-unpinned}" "$cpus" "$([ "$cpus" -eq 1 ] || echo s)"
printf '%-12s %10s %10s %12s %12s\n' "" "cold s" "warm s" "cold MiB/s" "warm MiB/s"
for t in fsck b3sum; do
        printf '%-12s %10.3f %10.3f %12s %12s\n' "$t" "${med[$t,cold]}" "${med[$t,warm]}" \
                "$(mibs "${med[$t,cold]}")" "$(mibs "${med[$t,warm]}")"
done
echo "fsck / b3sum (time; 1.00 or less: fsck at least at b3sum speed): cold $(ratio "${med[fsck,cold]}" "${med[b3sum,cold]}")," \
        "warm $(ratio "${med[fsck,warm]}" "${med[b3sum,warm]}")"
echo "MiB/s: the blob bytes over the time. fsck: 'casfs fsck', its default workers (8 per online CPU);" \
        "b3sum: find of the blob files into xargs -P $cpus -n 500 b3sum --num-threads $cpus (one process per CPU)"
printf 'fsck also reads what b3sum does not: %s outboards (%s bytes, %.1f MiB: <hex>.outboard beside the blobs in blobs/ab/cd/, left out of b3sum'"'"'s files), compared with the outboard the hash yields, and the directory records and roots (meta.lmdb, %.1f MiB)\n' \
        "$nob" "$ob_bytes" "$(echo "$ob_bytes / 1048576" | bc -l)" "$(echo "${meta_bytes:-0} / 1048576" | bc -l)"
