# Helpers shared by the benchmarks (sourced, not run). The caller sets: repo
# (the source tree), prog (its name, for messages), pin (array: taskset or
# empty), mnt (the mountpoint), daemon (PID of the FUSE daemon it started, or
# empty), ios and seed (for randread), scratch, runs and casfs (bench_option)
# and corpus (default_corpus).

# bench_usage: the calling script's help, its comment lines from the second
# to the first line that is not one
bench_usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; }

# bench_option ARGS...: one of the options the benchmarks share, at the front
# of ARGS: --scratch DIR, --runs N or --casfs PATH, each setting its
# variable; took is then how many words it used. Returns 1 for another.
bench_option() {
        case $1 in
        --scratch) scratch=$2 ;;
        --runs) runs=$2 ;;
        --casfs) casfs=$2 ;;
        *) return 1 ;;
        esac
        took=2
}

# build_casfs: builds the tree (meson, ninja) when $casfs is not there
build_casfs() {
        [ -x "$casfs" ] || (cd "$repo" && { [ -d build ] || meson setup build >/dev/null; } && ninja -C build >/dev/null)
}

# default_corpus: without --corpus, $scratch/corpus, a copy of /usr/share and
# /usr/lib made the first time
default_corpus() {
        [ -z "$corpus" ] || return 0
        corpus=$scratch/corpus
        if [ ! -d "$corpus" ]; then
                echo "copying /usr/share and /usr/lib to $corpus ..." >&2
                mkdir -p "$corpus"
                cp -a /usr/share /usr/lib "$corpus/"
        fi
}

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
# timed COMMAND...: runs it, prints its seconds; warns (naming $root or $file,
# what the caller measures) when it fails
timed() {
        local t0 t1
        t0=$(now)
        "$@" >/dev/null 2>&1 || echo "warning: '$*' failed on ${root:-${file:-}}" >&2
        t1=$(now)
        echo "$t1 - $t0" | bc
}

# print_rand_bytes: the line of bytes each daemon read per random 4 KiB read,
# from the caller's med[SYSTEM,rand_bytes], systems and nreads (none: no line)
print_rand_bytes() {
        local s line="cold rand, bytes the daemon read per 4 KiB read:"
        for s in "${systems[@]}"; do
                [ -n "${med[$s,rand_bytes]:-}" ] &&
                        line+=" $s $(awk -v b="${med[$s,rand_bytes]}" -v n="$nreads" 'BEGIN {printf "%.0f", b / n}')"
        done
        [ "$line" = "cold rand, bytes the daemon read per 4 KiB read:" ] || echo "$line"
}

# measure_order SYSTEM...: the order in which each run measures the
# systems. The host caches the guest's disk image, which a guest's
# drop_caches does not empty, so a system measured right after another that
# read the same files (casfs after casfs-noverify: the store; squashfuse
# after squashfuse_ll: the image) would find them warm. Systems reading the
# same files are kept apart, also from the end of one run to the start of
# the next; where that cannot be (casfs and casfs-noverify beside native
# only), native is measured a second time between them.
measure_order() {
        local -a groups=() items=() order=()
        local -A members=()
        local s src g n k max=0
        source_of() { case $1 in casfs-baseline) echo store-baseline ;; casfs*) echo store ;; squashfuse*) echo image ;; *) echo "$1" ;; esac; }
        for s in "$@"; do
                src=$(source_of "$s")
                [ -n "${members[$src]:-}" ] || groups+=("$src")
                members[$src]+="$s "
        done
        for g in "${groups[@]}"; do
                n=$(wc -w <<<"${members[$g]}")
                (( n > max )) && max=$n
        done
        n=$#
        if (( max > 1 && max * 2 > n )); then
                if [ -z "${members[native]:-}" ]; then
                        printf '%s\n' "$@"
                        return
                fi
                members[native]+="native "
                n=$((n + 1))
        fi
        # the largest groups first, then every other place: no neighbours
        for k in $(seq "$n" -1 1); do
                for g in "${groups[@]}"; do
                        [ "$(wc -w <<<"${members[$g]}")" -eq "$k" ] && items+=(${members[$g]})
                done
        done
        for (( k = 0; k < n; k++ )); do
                if (( 2 * k < n )); then order[2 * k]=${items[k]}; else order[2 * (k - (n + 1) / 2) + 1]=${items[k]}; fi
        done
        printf '%s\n' "${order[@]}"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# alive PID: the process exists and is not a zombie
alive() {
        local st
        st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]
}

# stop_daemon: ends the daemon (by its PID: SIGTERM, SIGKILL after 5 s) and
# unmounts $mnt if it is still mounted
stop_daemon() {
        if [ -n "${daemon:-}" ]; then
                kill "$daemon" 2>/dev/null || true
                for _ in $(seq 1 100); do
                        alive "$daemon" || break
                        sleep 0.05
                done
                kill -KILL "$daemon" 2>/dev/null || true
                wait "$daemon" 2>/dev/null || true
                daemon=
        fi
        if grep -q " $mnt fuse" /proc/mounts; then
                fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" || true
        fi
}

# wait_mounted NAME: waits (up to 10 s) until the daemon's mount shows on $mnt;
# fails if it does not (or the daemon died)
wait_mounted() {
        for _ in $(seq 1 200); do
                grep -q " $mnt fuse" /proc/mounts && return 0
                alive "$daemon" || break
                sleep 0.05
        done
        echo "$prog: $1 did not mount on $mnt" >&2
        return 1
}

# rchar: bytes the daemon has read so far (read-like system calls, all threads)
# daemon_cpu: CPU seconds (user and system, all threads) the daemon used so far
daemon_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / hz}' "/proc/$daemon/stat" 2>/dev/null || echo 0; }
rchar() { awk '/^rchar:/ {print $2}' "/proc/$daemon/io" 2>/dev/null || echo 0; }

# randread FILE SIZE: $ios random 4 KiB reads of FILE (of SIZE bytes) with fio,
# at offsets fixed by $seed: buffered (psync), the file's cached pages
# invalidated first, POSIX_FADV_RANDOM so that the kernel reads no more than
# asked. Prints "SECONDS READS MAX_MS": SECONDS is the sum of the reads'
# latencies (fio's runtime also counts its own set-up), MAX_MS the slowest read.
# Prints nothing if fio failed.
randread() {
        local f=${1//:/\\:} # fio splits file names at ':'
        "${pin[@]}" fio --name=rand --filename="$f" --readonly --rw=randread --bs=4k --size="$2" \
                --number_ios="$ios" --randseed="$seed" --ioengine=psync --direct=0 --invalidate=1 \
                --fadvise_hint=random --output-format=terse --terse-version=3 2>/dev/null |
                awk -F';' '$1 == 3 && $5 == 0 && $6 > 0 { n = $6 / 4; printf "%.6f %d %.3f\n", $40 * n / 1e6, n, $39 / 1e3 }' || true
}

# ratio A B: A / B with two decimals, "-" when either is missing or B is zero
ratio() {
        awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}
