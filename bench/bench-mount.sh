#!/usr/bin/env bash
# Benchmark of the mount: the same corpus read natively, through squashfuse
# (and squashfuse_ll) on an uncompressed squashfs image, and through casfs
# mount (with and without verification), side by side in one run. Prints
# medians and ratios to native.
#
#   bench/bench-mount.sh [--corpus DIR] [--scratch DIR] [--runs N] [--unpinned] [--casfs PATH]
#                        [--baseline PATH] [--ios N] [--only 'native casfs ...']
#
# Systems: native squashfuse_ll squashfuse casfs casfs-noverify (--only picks);
# with --baseline PATH also casfs-baseline: another casfs binary (an earlier
# commit's build), mounting a store of its own that it imported itself, so that
# a change is measured against what came before in the same run.
# Default corpus: a copy of /usr/share and /usr/lib made under the scratch
# folder. Pinned (the default) runs every daemon and measured command on CPU 0,
# for stable ratios; --unpinned shows what a user sees.
# --ios N: random 4 KiB reads of the largest file (default 4000). Also prints
# the CPU time not idle during the largest file's reads (from the kernel's
# cpuidle times, else its /proc/stat idle counts in clock ticks: CPU 0 pinned,
# every CPU unpinned): what bounds that row, the disk (time idle) or the CPU
# (none). Needs root (drop_caches, mounts) and fio.
set -euo pipefail
export LC_ALL=C

prog=bench-mount
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/common.sh"
corpus=
scratch=/var/tmp/casfs-bench
runs=4
pin=(taskset -c 0)
casfs=$repo/build/src/cli/casfs
baseline=
only=
ios=4000
seed=1234
while [ $# -gt 0 ]; do
        case $1 in
        --corpus) corpus=$2; shift 2 ;;
        --unpinned) pin=(); shift ;;
        --baseline) baseline=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --ios) ios=$2; shift 2 ;;
        -h|--help) bench_usage; exit 0 ;;
        *) bench_option "$@" || { echo "unknown option $1" >&2; exit 2; }; shift "$took" ;;
        esac
done
all=(native squashfuse_ll squashfuse casfs casfs-noverify)
if [ -n "$baseline" ]; then
        [ -x "$baseline" ] || { echo "bench-mount: --baseline $baseline is not an executable" >&2; exit 2; }
        all+=(casfs-baseline)
fi
read -r -a only_systems <<<"$only"
for s in "${only_systems[@]}"; do
        [[ " ${all[*]} " == *" $s "* ]] || { echo "bench-mount: unknown system '$s' (one of: ${all[*]})" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench-mount: needs root (drop_caches, mounts)" >&2; exit 1; }
command -v fio >/dev/null || { echo "bench-mount: needs fio (scripts/install-deps.sh --bench)" >&2; exit 1; }
build_casfs

mkdir -p "$scratch"
default_corpus
store=$scratch/store
store_base=$scratch/store-baseline
img=$scratch/corpus.squashfs
mnt=$scratch/mnt
mkdir -p "$mnt"
daemon=

cleanup() { stop_daemon; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "importing into $store ..." >&2
"$casfs" --store "$store" import -q --name corpus "$corpus" >/dev/null
if [ -n "$baseline" ]; then
        echo "importing into $store_base with $baseline ..." >&2
        "$baseline" --store "$store_base" import -q --name corpus "$corpus" >/dev/null
fi
if [ ! -f "$img" ] && command -v mksquashfs >/dev/null; then
        echo "building $img ..." >&2
        mksquashfs "$corpus" "$img" -noI -noD -noF -noX -no-xattrs -quiet >/dev/null
fi

# the largest regular file: read sequentially and at random offsets
read -r big_size big < <(cd "$corpus" && find . -type f -printf '%s %P\n' | sort -n -k1,1 | tail -n 1)
[ -n "${big:-}" ] && [ "$big_size" -ge 4096 ] || { echo "bench-mount: no file of 4 KiB or more in $corpus" >&2; exit 1; }

# mount_sys SYSTEM: mounts it (fresh) and sets root=
mount_sys() {
        cleanup
        daemon=
        case $1 in
        native) root=$corpus; return 0 ;;
        casfs)
                "${pin[@]}" "$casfs" --store "$store" mount -f "$mnt" 2>/dev/null &
                daemon=$!
                root=$mnt/corpus ;;
        casfs-noverify)
                "${pin[@]}" "$casfs" --store "$store" mount --no-verify -f "$mnt" 2>/dev/null &
                daemon=$!
                root=$mnt/corpus ;;
        casfs-baseline)
                "${pin[@]}" "$baseline" --store "$store_base" mount -f "$mnt" 2>/dev/null &
                daemon=$!
                root=$mnt/corpus ;;
        squashfuse|squashfuse_ll)
                "${pin[@]}" "$1" -f "$img" "$mnt" &
                daemon=$!
                root=$mnt ;;
        esac
        wait_mounted "$1"
}

walk() { "${pin[@]}" find "$root" -printf '%s %m %y\n' > /dev/null; }
readall() { (cd "$root" && "${pin[@]}" find . -type f -exec cat {} + | wc -c > /dev/null); }
readbig() { [ "$("${pin[@]}" cat "$root/$big" | wc -c)" -eq "$big_size" ]; }

# The measured CPUs' time not idle (CPU 0 pinned, every CPU unpinned), whoever
# used it: their time less what the kernel's cpuidle counted in idle states. A
# read bound by the disk leaves the CPU idle part of its time, one bound by
# the CPU none. Where the kernel keeps no cpuidle times, /proc/stat's idle and
# iowait counts stand in for them: whole clock ticks (10 ms at USER_HZ 100),
# so a single reading is that coarse, a median of several less so.
if [ ${#pin[@]} -gt 0 ]; then idle_cpus=(/sys/devices/system/cpu/cpu0); else idle_cpus=(/sys/devices/system/cpu/cpu[0-9]*); fi
idle_files=()
for c in "${idle_cpus[@]}"; do for f in "$c"/cpuidle/state*/time; do [ -r "$f" ] && idle_files+=("$f"); done; done
# idle_from: where the idle times come from (cpuidle, /proc/stat), empty: nowhere
idle_from=
if [ ${#idle_files[@]} -gt 0 ]; then
        idle_from=cpuidle
elif [ -r /proc/stat ]; then
        idle_from=/proc/stat
        tick_us=$((1000000 / $(getconf CLK_TCK)))
        # the lines counted: cpu0's pinned, every cpuN's unpinned
        if [ ${#pin[@]} -gt 0 ]; then stat_cpu='cpu0'; else stat_cpu='cpu[0-9]*'; fi
fi
# mark: the time (s) and the idle time (us) in mark_t and mark_idle, with builtins only
mark() {
        local t f name user nice sys idle iowait rest
        mark_idle=0
        if [ "$idle_from" = cpuidle ]; then
                for f in "${idle_files[@]}"; do read -r t <"$f"; mark_idle=$((mark_idle + t)); done
        elif [ -n "$idle_from" ]; then
                while read -r name user nice sys idle iowait rest; do
                        # shellcheck disable=SC2254
                        case $name in $stat_cpu) mark_idle=$((mark_idle + (idle + iowait) * tick_us)) ;; esac
                done </proc/stat
        fi
        mark_t=$EPOCHREALTIME
}
# timed_busy NAME COMMAND...: like timed, into res[$s,NAME,$k], and the ms not
# idle meanwhile into res[$s,NAME_busy,$k]
timed_busy() {
        local name=$1 t0 i0
        shift
        mark; t0=$mark_t; i0=$mark_idle
        "$@" >/dev/null 2>&1 || echo "warning: '$*' failed on $root" >&2
        mark
        res[$s,$name,$k]=$(echo "$mark_t - $t0" | bc)
        [ -z "$idle_from" ] || res[$s,${name}_busy,$k]=$(awk -v w="${res[$s,$name,$k]}" -v n=${#idle_cpus[@]} \
                -v i=$((mark_idle - i0)) 'BEGIN {printf "%.0f\n", w * 1000 * n - i / 1000}')
}

systems=(native)
command -v squashfuse_ll >/dev/null && [ -f "$img" ] && systems+=(squashfuse_ll)
command -v squashfuse >/dev/null && [ -f "$img" ] && systems+=(squashfuse)
systems+=(casfs casfs-noverify)
[ -z "$baseline" ] || systems+=(casfs-baseline)
if [ -n "$only" ]; then
        systems=("${only_systems[@]}")
        for s in "${systems[@]}"; do
                if [[ $s == squashfuse* ]]; then
                        command -v "$s" >/dev/null && [ -f "$img" ] || { echo "bench-mount: $s or $img missing" >&2; exit 1; }
                fi
        done
fi
declare -A res
rss_idle=- rss_walk=- rss_drop=- inodes=-

mapfile -t order < <(measure_order "${systems[@]}")
declare -A count
for run in $(seq 1 "$runs"); do
        for s in "${order[@]}"; do
                echo "run $run: $s" >&2
                k=$(( ${count[$s]:-0} + 1 ))
                count[$s]=$k
                mount_sys "$s"; drop
                [ "$s" = casfs ] && [ "$run" = 1 ] && rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
                res[$s,cold_walk,$k]=$(timed walk)
                walk >/dev/null 2>&1 || true   # warm-up right before: pages idle for a minute get evicted here
                res[$s,warm_walk,$k]=$(timed walk)
                if [ "$s" = casfs ] && [ "$run" = 1 ]; then
                        rss_walk=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
                        inodes=$(find "$root" | wc -l)
                        drop; sleep 3   # memory goes back a quiet second after the FORGETs stop
                        rss_drop=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
                fi
                mount_sys "$s"; drop
                cpu=; [ -z "$daemon" ] || cpu=$(daemon_cpu)
                res[$s,cold_read,$k]=$(timed readall)
                if [ -n "$daemon" ]; then res[$s,read_cpu,$k]=$(echo "$(daemon_cpu) - $cpu" | bc); fi
                readall >/dev/null 2>&1 || true
                res[$s,warm_read,$k]=$(timed readall)
                mount_sys "$s"; drop
                timed_busy cold_seq readbig
                # right after: the page cache as the cold read left it (untouched pages go within a minute)
                timed_busy warm_seq readbig
                mount_sys "$s"; drop
                before=$(rchar)
                out=$(randread "$root/$big" "$big_size")
                [ -n "$out" ] || { echo "bench-mount: fio failed on $root/$big" >&2; exit 1; }
                read -r "res[$s,cold_rand,$k]" nreads "res[$s,rand_max,$k]" <<<"$out"
                if [ -n "$daemon" ]; then res[$s,rand_bytes,$k]=$(( $(rchar) - before )); fi
        done
done
cleanup

printf '\n%s, %s runs (order: %s), %s\n' "$corpus ($(du -sh "$corpus" | cut -f1), $(find "$corpus" | wc -l) entries)" "$runs" \
        "${order[*]}" "${pin[*]:-unpinned}"
cols=(cold_walk warm_walk cold_read warm_read cold_seq warm_seq cold_rand)
printf '%-15s %16s %16s %16s %16s %16s %16s %16s\n' "" "cold walk" "warm walk" "cold read" "warm read" "cold seq" \
        "warm seq" "cold rand"
declare -A med base
for s in "${systems[@]}"; do
        line=$(printf '%-15s' "$s")
        for m in "${cols[@]}" rand_max rand_bytes read_cpu cold_seq_busy warm_seq_busy; do
                vals=()
                for k in $(seq 1 "${count[$s]}"); do [ -n "${res[$s,$m,$k]:-}" ] && vals+=("${res[$s,$m,$k]}"); done
                [ ${#vals[@]} -gt 0 ] || continue
                med[$s,$m]=$(median "${vals[@]}")
        done
        for m in "${cols[@]}"; do
                [ "$s" = native ] && base[$m]=${med[$s,$m]}
                case $m in cold_seq|warm_seq|cold_rand) fmt=' %8.3f (%5s)' ;; *) fmt=' %8.2f (%5s)' ;; esac
                line+=$(printf "$fmt" "${med[$s,$m]}" "$(ratio "${med[$s,$m]}" "${base[$m]:-}")")
        done
        echo "$line"
done
echo "time in s (ratio to native)"
echo "cold seq: cat of the largest file, $big ($big_size bytes); warm seq: the same again right after it, on the" \
        "same mount; cold rand: $nreads random 4 KiB reads of it" \
        "(fio, seed $seed, buffered, POSIX_FADV_RANDOM), the sum of their latencies"
if [ -n "$idle_from" ]; then
        line="CPU time not idle during the cold seq / warm seq (ms, median; $([ ${#pin[@]} -gt 0 ] && echo "CPU 0" ||
                echo "all ${#idle_cpus[@]} CPUs"), whoever used it$([ "$idle_from" = cpuidle ] ||
                echo "; from $idle_from, in clock ticks")):"
        for s in "${systems[@]}"; do line+=" $s ${med[$s,cold_seq_busy]:--} / ${med[$s,warm_seq_busy]:--};"; done
        echo "${line%;}"
fi
line="cold rand, slowest read (ms):"
for s in "${systems[@]}"; do line+=" $s ${med[$s,rand_max]}"; done
echo "$line"
print_rand_bytes
line="cold read, each run (s):"
for s in "${systems[@]}"; do
        line+=" $s"
        for k in $(seq 1 "${count[$s]}"); do line+=$(printf ' %.2f' "${res[$s,cold_read,$k]}"); done
        line+=";"
done
echo "${line%;}"
line="daemon CPU during the cold read (s, median):"
for s in "${systems[@]}"; do [ -n "${med[$s,read_cpu]:-}" ] && line+=$(printf ' %s %.2f' "$s" "${med[$s,read_cpu]}"); done
[ "$line" = "daemon CPU during the cold read (s, median):" ] || echo "$line"
if [[ " ${systems[*]} " == *" casfs "* && " ${systems[*]} " == *" casfs-noverify "* ]]; then
        echo "cost of verification (casfs / casfs-noverify): cold read $(ratio "${med[casfs,cold_read]}" "${med[casfs-noverify,cold_read]}")," \
                "cold seq $(ratio "${med[casfs,cold_seq]}" "${med[casfs-noverify,cold_seq]}")," \
                "cold rand $(ratio "${med[casfs,cold_rand]}" "${med[casfs-noverify,cold_rand]}");" \
                "daemon CPU during the cold read $(ratio "${med[casfs,read_cpu]}" "${med[casfs-noverify,read_cpu]}")"
fi
if [[ " ${systems[*]} " == *" casfs "* && " ${systems[*]} " == *" casfs-baseline "* ]]; then
        line="casfs against the baseline (casfs / casfs-baseline):"
        for m in "${cols[@]}"; do line+=" $m $(ratio "${med[casfs,$m]}" "${med[casfs-baseline,$m]}"),"; done
        echo "${line%,}"
fi
if [ "$rss_walk" != - ]; then
        echo "casfs daemon RSS: ${rss_idle} KiB idle, ${rss_walk} KiB after the full walk ($inodes entries: $((rss_walk * 1024 / inodes)) bytes each), ${rss_drop} KiB after dropping caches"
fi
