#!/usr/bin/env bash
# Benchmark of the virtiofs daemon: inside a guest (QEMU), a metadata walk and
# a full read of a tree served by casfs virtiofs and, side by side in the same
# run, by Debian's C virtiofsd exporting the same tree from a host folder.
# Emulated CPUs make absolute times meaningless: look at the ratios.
#
#   bench/bench-virtiofs.sh [--tree DIR] [--runs N] [--casfs PATH]
#
# Default tree: a copy of /usr/include. Needs qemu-system-x86, busybox-static
# and cpio (scripts/install-deps.sh --all); the guest is booted by
# tests/virtiofs/guest.sh.
set -euo pipefail
export LC_ALL=C
repo=$(cd "$(dirname "$0")/.." && pwd)
tree=/usr/include
runs=3
casfs=$repo/build/src/cli/casfs
guest=$repo/tests/virtiofs/guest.sh
while [ $# -gt 0 ]; do
        case $1 in
        --tree) tree=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --casfs) casfs=$2; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
        esac
done
[ -x /usr/lib/qemu/virtiofsd ] || { echo "bench-virtiofs: /usr/lib/qemu/virtiofsd not found" >&2; exit 1; }
work=$(mktemp -d /var/tmp/casfs-bench-vfs.XXXXXX)
backend=
stop_backend() {
        if [ -n "$backend" ]; then
                kill -TERM "$backend" 2>/dev/null || true
                wait "$backend" 2>/dev/null || true
                backend=
        fi
}
trap 'stop_backend; rm -rf "$work"' EXIT
mkdir -p "$work/export"
cp -a "$tree" "$work/export/tree"
"$casfs" --store "$work/store" import -q --name tree "$work/export/tree" >/dev/null

# in the guest: times from /proc/uptime (centiseconds), caches dropped before the cold runs
cat > "$work/guest.sh" <<'G'
now() { cut -d' ' -f1 /proc/uptime; }
cd tree
sync; echo 3 > /proc/sys/vm/drop_caches
a=$(now); find . > /dev/null; b=$(now); echo "cold_walk $a $b"
a=$(now); find . > /dev/null; b=$(now); echo "warm_walk $a $b"
sync; echo 3 > /proc/sys/vm/drop_caches
a=$(now); find . -type f -exec cat {} + | wc -c > /dev/null; b=$(now); echo "cold_read $a $b"
a=$(now); find . -type f -exec cat {} + | wc -c > /dev/null; b=$(now); echo "warm_read $a $b"
G

declare -A res
for run in $(seq 1 "$runs"); do
        for s in virtiofsd casfs; do
                echo "run $run: $s" >&2
                rm -f "$work/vfs.sock"
                if [ $s = casfs ]; then
                        "$casfs" --store "$work/store" virtiofs --socket "$work/vfs.sock" 2>"$work/backend.log" &
                else
                        /usr/lib/qemu/virtiofsd --socket-path="$work/vfs.sock" -o source="$work/export" -o cache=auto \
                                2>"$work/backend.log" &
                fi
                backend=$!
                for _ in $(seq 1 100); do [ -S "$work/vfs.sock" ] && break; sleep 0.1; done
                "$guest" --socket "$work/vfs.sock" --script "$work/guest.sh" --out "$work/out" --timeout 1200 --mem 1G \
                        >/dev/null 2>&1 || { echo "bench-virtiofs: the $s run failed" >&2; cat "$work/backend.log" >&2; exit 1; }
                stop_backend
                while read -r m a b; do
                        res[$s,$m]+="$(awk -v a="$a" -v b="$b" 'BEGIN {print b - a}') "
                done < "$work/out"
        done
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf '\n%s (%s entries) in a QEMU guest, %s runs\n' "$tree" "$(find "$tree" | wc -l)" "$runs"
printf '%-10s %16s %16s %16s %16s\n' "" "cold walk" "warm walk" "cold read" "warm read"
for s in virtiofsd casfs; do
        line=$(printf '%-10s' "$s")
        for m in cold_walk warm_walk cold_read warm_read; do
                v=$(median "${res[$s,$m]}"); base=$(median "${res[virtiofsd,$m]}")
                line+=$(printf ' %8.2f (%5.2f)' "$v" "$(awk -v v="$v" -v b="$base" 'BEGIN {print (b > 0 ? v / b : 0)}')")
        done
        echo "$line"
done
echo "guest seconds (ratio to virtiofsd serving a host folder)"
