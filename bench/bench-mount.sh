#!/usr/bin/env bash
# Benchmark of the mount: the same corpus read natively, through squashfuse
# (and squashfuse_ll) on an uncompressed squashfs image, and through casfs
# mount, side by side in one run. Prints medians and ratios to native.
#
#   bench/bench-mount.sh [--corpus DIR] [--scratch DIR] [--runs N] [--unpinned] [--casfs PATH]
#                        [--only 'native casfs ...']
#
# Default corpus: a copy of /usr/share and /usr/lib made under the scratch
# folder. Pinned (the default) runs every daemon and measured command on CPU 0,
# for stable ratios (see BENCHMARKING.md); --unpinned shows what a user sees.
# Needs root (drop_caches, mounts).
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
corpus=
scratch=/var/tmp/casfs-bench
runs=3
pin=(taskset -c 0)
casfs=$repo/build/src/cli/casfs
only=
while [ $# -gt 0 ]; do
        case $1 in
        --corpus) corpus=$2; shift 2 ;;
        --scratch) scratch=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --unpinned) pin=(); shift ;;
        --casfs) casfs=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
        esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-mount: needs root (drop_caches, mounts)" >&2; exit 1; }
[ -x "$casfs" ] || (cd "$repo" && { [ -d build ] || meson setup build >/dev/null; } && ninja -C build >/dev/null)

mkdir -p "$scratch"
if [ -z "$corpus" ]; then
        corpus=$scratch/corpus
        if [ ! -d "$corpus" ]; then
                echo "copying /usr/share and /usr/lib to $corpus ..." >&2
                mkdir -p "$corpus"
                cp -a /usr/share /usr/lib "$corpus/"
        fi
fi
store=$scratch/store
img=$scratch/corpus.squashfs
mnt=$scratch/mnt
mkdir -p "$mnt"
daemon=

cleanup() {
        if [ -n "$daemon" ]; then
                kill "$daemon" 2>/dev/null || true
                wait "$daemon" 2>/dev/null || true
        fi
        if grep -q " $mnt fuse" /proc/mounts; then
                fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" || true
        fi
}
trap cleanup EXIT

echo "importing into $store ..." >&2
"$casfs" --store "$store" import -q --name corpus "$corpus" >/dev/null
if [ ! -f "$img" ] && command -v mksquashfs >/dev/null; then
        echo "building $img ..." >&2
        mksquashfs "$corpus" "$img" -noI -noD -noF -noX -no-xattrs -quiet >/dev/null
fi

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }

# mount_sys SYSTEM: mounts it (fresh) and sets root=
mount_sys() {
        cleanup
        daemon=
        case $1 in
        native) root=$corpus ;;
        casfs)
                "${pin[@]}" "$casfs" --store "$store" mount -f "$mnt" 2>/dev/null &
                daemon=$!
                root=$mnt/corpus ;;
        squashfuse|squashfuse_ll)
                "${pin[@]}" "$1" -f "$img" "$mnt" &
                daemon=$!
                root=$mnt ;;
        esac
        for _ in $(seq 1 100); do
                [ "$1" = native ] && break
                grep -q " $mnt fuse" /proc/mounts && break
                sleep 0.05
        done
}

timed() { # prints seconds
        local t0 t1
        t0=$(now)
        "$@" >/dev/null 2>&1 || echo "warning: '$*' failed on $root" >&2
        t1=$(now)
        echo "$t1 - $t0" | bc
}
walk() { "${pin[@]}" find "$root" -printf '%s %m %y\n' > /dev/null; }
readall() { cd "$root" && "${pin[@]}" find . -type f -exec cat {} + | wc -c > /dev/null; }

systems=(native)
command -v squashfuse_ll >/dev/null && [ -f "$img" ] && systems+=(squashfuse_ll)
command -v squashfuse >/dev/null && [ -f "$img" ] && systems+=(squashfuse)
systems+=(casfs)
if [ -n "$only" ]; then
        read -r -a systems <<<"$only"
fi
declare -A res
rss_idle=- rss_walk=- rss_drop=- inodes=-

for run in $(seq 1 "$runs"); do
        for s in "${systems[@]}"; do
                echo "run $run: $s" >&2
                mount_sys "$s"; drop
                [ "$s" = casfs ] && [ "$run" = 1 ] && rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
                res[$s,cold_walk,$run]=$(timed walk)
                walk >/dev/null 2>&1 || true   # warm-up right before: pages idle for a minute get evicted here
                res[$s,warm_walk,$run]=$(timed walk)
                if [ "$s" = casfs ] && [ "$run" = 1 ]; then
                        rss_walk=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
                        inodes=$(find "$root" | wc -l)
                        drop; sleep 2
                        rss_drop=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
                fi
                mount_sys "$s"; drop
                res[$s,cold_read,$run]=$(timed readall)
                readall >/dev/null 2>&1 || true
                res[$s,warm_read,$run]=$(timed readall)
        done
done
cleanup

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf '\n%s, %s runs, %s\n' "$corpus ($(du -sh "$corpus" | cut -f1), $(find "$corpus" | wc -l) entries)" "$runs" \
        "${pin[*]:-unpinned}"
printf '%-15s %16s %16s %16s %16s\n' "" "cold walk" "warm walk" "cold read" "warm read"
declare -A base
for s in "${systems[@]}"; do
        line=$(printf '%-15s' "$s")
        for m in cold_walk warm_walk cold_read warm_read; do
                vals=()
                for run in $(seq 1 "$runs"); do vals+=("${res[$s,$m,$run]}"); done
                med=$(median "${vals[@]}")
                [ "$s" = native ] && base[$m]=$med
                line+=$(printf ' %8.2f (%5.2f)' "$med" "$(echo "$med / ${base[$m]}" | bc -l)")
        done
        echo "$line"
done
echo "time in s (ratio to native)"
if [ "$rss_walk" != - ]; then
        echo "casfs daemon RSS: ${rss_idle} KiB idle, ${rss_walk} KiB after the full walk ($inodes entries: $((rss_walk * 1024 / inodes)) bytes each), ${rss_drop} KiB after dropping caches"
fi
