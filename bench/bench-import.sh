#!/usr/bin/env bash
# Benchmark of import, side by side in one run: casfs import into a fresh
# store, a second import of the unchanged tree, cp -a (the copy limit), b3sum
# of every file (the hashing limit), mksquashfs without compression and
# casync make. Every command starts cold (caches dropped). Prints medians,
# ratios to cp -a, store size and casfs import's peak memory.
#
#   bench/bench-import.sh [--corpus DIR] [--scratch DIR] [--runs N] [--casfs PATH] [--quick]
#
# Default corpus: a copy of /usr/share and /usr/lib under the scratch folder
# (--quick: /usr/share/doc, one run). Needs root (drop_caches).
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/common.sh"
corpus=
scratch=/var/tmp/casfs-bench
runs=3
casfs=$repo/build/src/cli/casfs
while [ $# -gt 0 ]; do
        case $1 in
        --corpus) corpus=$2; shift 2 ;;
        --quick) corpus=/usr/share/doc; runs=1; shift ;;
        -h|--help) bench_usage; exit 0 ;;
        *) bench_option "$@" || { echo "unknown option $1" >&2; exit 2; }; shift "$took" ;;
        esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-import: needs root (drop_caches)" >&2; exit 1; }
build_casfs
mkdir -p "$scratch"
default_corpus
work=$scratch/import-work
trap 'rm -rf "$work"' EXIT

# timed NAME COMMAND...: cold, records seconds and peak RSS (KiB); in place
# of common.sh's
declare -A secs rss
timed() {
        local name=$1 out
        shift
        drop
        /usr/bin/time -f '%e %M' -o "$scratch/time.out" "$@" >/dev/null 2>&1 ||
                echo "warning: '$name' failed" >&2
        out=$(tail -n 1 "$scratch/time.out")
        secs[$name]+="${out% *} "
        rss[$name]=${out#* }
}

tools=(cp b3sum casfs casfs-again)
command -v mksquashfs >/dev/null && tools+=(mksquashfs) || echo "skipped: mksquashfs not installed" >&2
command -v casync >/dev/null && tools+=(casync) || echo "skipped: casync not installed" >&2

for run in $(seq 1 "$runs"); do
        rm -rf "$work"; mkdir -p "$work"
        echo "run $run ..." >&2
        timed cp cp -a "$corpus" "$work/copy"; rm -rf "$work/copy"
        timed b3sum sh -c "find '$corpus' -type f -print0 | xargs -0 -P2 -n 500 b3sum"
        timed casfs "$casfs" --store "$work/store" import -q --name corpus "$corpus"
        timed casfs-again "$casfs" --store "$work/store" import -q --name corpus "$corpus"
        store_size=$(du -sk "$work/store" | cut -f1)
        rm -rf "$work/store"
        [[ " ${tools[*]} " == *" mksquashfs "* ]] && { timed mksquashfs mksquashfs "$corpus" "$work/img" -noI -noD -noF -noX -no-xattrs -quiet; rm -f "$work/img"; }
        [[ " ${tools[*]} " == *" casync "* ]] && { timed casync casync make --store="$work/castr" "$work/idx.caidx" "$corpus"; rm -rf "$work/castr" "$work/idx.caidx"; }
done

median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
files=$(find "$corpus" -type f | wc -l)
printf '\n%s: %s, %s entries (%s files), %s runs, cold\n' "$corpus" "$(du -sh "$corpus" | cut -f1)" \
        "$(find "$corpus" | wc -l)" "$files" "$runs"
base=$(median "${secs[cp]}")
printf '%-28s %10s %10s %12s\n' tool "median s" "vs cp -a" "files/s"
for t in "${tools[@]}"; do
        m=$(median "${secs[$t]}")
        label=$t
        case $t in
        cp) label="cp -a" ;;
        b3sum) label="b3sum (every file, 2 jobs)" ;;
        casfs) label="casfs import (fresh store)" ;;
        casfs-again) label="casfs import (unchanged)" ;;
        mksquashfs) label="mksquashfs (uncompressed)" ;;
        casync) label="casync make" ;;
        esac
        printf '%-28s %10.2f %10.3f %12.0f\n' "$label" "$m" "$(echo "$m / $base" | bc -l)" "$(echo "$files / $m" | bc -l)"
done
echo "casfs store: $((store_size / 1024)) MiB for a corpus of $(( $(du -sk "$corpus" | cut -f1) / 1024 )) MiB"
echo "casfs import peak RSS: $((rss[casfs] / 1024)) MiB (unchanged: $((rss[casfs-again] / 1024)) MiB)"
