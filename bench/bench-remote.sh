#!/usr/bin/env bash
# Benchmarks of remote stores against real servers on 127.0.0.1, side by side
# in one run. Two parts (both by default; --publish or --read picks one):
#
# publish: a real S3 server (Ceph RGW, tests/lib/rgw.sh, objects in memory):
# `casfs copy` from a local store to s3:// against `rclone copy --transfers
# 16` of the same files as plain objects. Then 1% of the files change (16
# bytes overwritten in the middle of every 100th file) and both publish
# again. For each: the time, the requests and bytes the server received
# (RGW's usage log), and what the bucket holds (listing), against the
# corpus's size. Medians over the runs, ratios casfs / rclone.
#
# read: the corpus published once to RGW (casfs copy; rclone copy of the
# plain files) and to nginx (casfs copy to a file:// store; casync make),
# both servers reached through bench/latency-proxy.py, which adds each
# round-trip time of --rtt (there is no netem here). Per RTT and per system,
# on a fresh mount with an empty cache: cold metadata walk, cold full read,
# python start-up (50 stdlib modules from the mount), C compile (200 headers
# from the mount); each row then again warm (the system's own cache filled,
# the kernel's caches dropped); the bytes each row downloaded, counted at the
# proxy. Systems: casfs (s3:// via the proxy), rclone (rclone mount,
# --vfs-cache-mode full) and s3fs of the plain objects (same RGW, same proxy),
# casfs-http (http:// via the proxy) and casync (casync mount over http, same
# nginx, same proxy), casfs-local (mount of the local store, no network) and
# rclone-copy (rclone copy --transfers 32 of the plain objects: the
# practical limit of a full read).
#
#   bench/bench-remote.sh [--publish | --read] [--corpus DIR] [--scratch DIR] [--casfs PATH]
#                         [--runs N] [--jobs N] [--quick]
#                         [--rtt 'MS...'] [--max-seconds N] [--only 'SYSTEM...']
#                         [--warm-runs N]
#
# Default corpus: copies of /usr/include, /usr/share/man, /usr/share/doc and
# /usr/lib/python3.* (about 40k entries) under the scratch folder (default
# /var/tmp/casfs-bench); --quick: /usr/include alone, one run. --jobs: casfs
# copy's transfers in flight (default 16, as rclone's). Each publishing run
# starts a fresh gateway (the objects live in its memory, sized from the
# corpus). rclone copies no symlinks and no empty directories (the rclone
# bucket holds the regular files only); casfs publishes the whole tree.
# --rtt: the added round-trip times in ms (default '0 20'); --max-seconds:
# each row's cap (default 600; a row that hits it prints '> N'); --only: the
# systems to read with (default: all that are installed); --warm-runs: how
# many times each warm row runs, the kernel's caches dropped before each, its
# median reported (default 3; a row that takes over 10 s runs once: the warm
# rows of a second or less are the ones a single run leaves to chance).
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/common.sh"
corpus=
scratch=/var/tmp/casfs-bench
runs=3
jobs=16
quick=false
casfs=$repo/build/src/cli/casfs
parts="publish read"
rtts="0 20"
max_secs=600
only=
warm_runs=3
while [ $# -gt 0 ]; do
        case $1 in
        --publish) parts=publish; shift ;;
        --read) parts=read; shift ;;
        --rtt) rtts=$2; shift 2 ;;
        --max-seconds) max_secs=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --warm-runs) warm_runs=$2; shift 2 ;;
        --corpus) corpus=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --quick) quick=true; runs=1; shift ;;
        -h|--help) bench_usage; exit 0 ;;
        *) bench_option "$@" || { echo "unknown option $1" >&2; exit 2; }; shift "$took" ;;
        esac
done
for c in rclone radosgw ceph-mon ceph-osd curl; do
        command -v "$c" >/dev/null || { echo "bench-remote: $c is missing (scripts/install-deps.sh --bench)" >&2; exit 1; }
done
build_casfs
mkdir -p "$scratch"
if [ -z "$corpus" ]; then
        if $quick; then
                corpus=$scratch/corpus-remote-quick
                [ -d "$corpus" ] || { mkdir -p "$corpus"; cp -a /usr/include "$corpus/"; }
        else
                corpus=$scratch/corpus-remote
                if [ ! -d "$corpus" ]; then
                        echo "copying /usr/include, /usr/share/man, /usr/share/doc, /usr/lib/python3.* to $corpus ..." >&2
                        mkdir -p "$corpus/share" "$corpus/lib"
                        cp -a /usr/include "$corpus/"
                        cp -a /usr/share/man /usr/share/doc "$corpus/share/"
                        cp -a /usr/lib/python3.* "$corpus/lib/"
                fi
        fi
fi
corpus=$(cd "$corpus" && pwd)
work=$scratch/remote-work
rm -rf "$work"
mkdir -p "$work"

. "$repo/tests/lib/rgw.sh"
. "$repo/tests/lib/nginx.sh"
prog=bench-remote
mnt=$work/mnt
daemon=
proxies=()
# stop_proxies: ends the latency proxies by their PIDs
stop_proxies() {
        local p
        for p in "${proxies[@]}"; do
                kill "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        proxies=()
}
cleanup() {
        set +e # every step runs, whatever the one before it did
        [ -z "${rowpid:-}" ] || kill "$rowpid" 2>/dev/null
        stop_daemon
        stop_proxies
        nginx_stop
        rgw_stop
        rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
want() { [[ " $parts " == *" $1 "* ]]; }

corpus_bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
entries=$(find "$corpus" -mindepth 1 | wc -l)
echo "importing the corpus into a local store ..." >&2
store=$work/store
"$casfs" --store "$store" import -q --name corpus "$corpus" >/dev/null

# median1 'V...': the median of the numbers V
median1() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

if want publish; then
# the changed corpus: every 100th regular file (in name order), 16 bytes
# overwritten in its middle (a small file: its first bytes)
changed=$work/corpus-changed
cp -a "$corpus" "$changed"
python3 - "$changed" >"$work/changed.list" <<'PY'
import os, random, sys
top = sys.argv[1]
files = []
for d, dirs, names in os.walk(top):
    dirs.sort()
    for n in sorted(names):
        p = os.path.join(d, n)
        if os.path.isfile(p) and not os.path.islink(p):
            files.append(p)
rnd = random.Random(42)
total = 0
for p in files[::100]:
    size = os.path.getsize(p)
    os.chmod(p, os.stat(p).st_mode | 0o200)
    with open(p, "r+b" if size else "wb") as f:
        f.seek(max(0, size // 2 - 8) if size >= 16 else 0)
        f.write(bytes(rnd.randrange(256) for _ in range(16)))
    total += os.path.getsize(p)
print(len(files[::100]), len(files), total)
PY
read -r nchanged nfiles changed_bytes <"$work/changed.list"

# the objects of both systems, the changes and room
mem=$((corpus_bytes * 3 + (512 << 20)))

"$casfs" --store "$work/store-changed" import -q --name corpus "$changed" >/dev/null

# usage BUCKET: 'PUT-REQUESTS BYTES-RECEIVED' of the bucket so far (RGW's usage log)
usage() {
        sleep 3 # the gateway flushes its usage log every second
        radosgw-admin -c "$RGW_DIR/ceph.conf" -n client.admin usage show --uid casfs 2>/dev/null |
                python3 -c '
import json, sys
ops = rx = 0
for e in json.load(sys.stdin).get("entries", []):
    for b in e["buckets"]:
        if b["bucket"] != sys.argv[1]:
            continue
        for c in b["categories"]:
            if c["category"] in ("put_obj", "copy_obj", "init_multipart", "put_part", "complete_multipart"):
                ops += c["ops"]
            rx += c["bytes_received"]
print(ops, rx)' "$1"
}
declare -A res
# measure SYSTEM PHASE BUCKET COMMAND...: times it; records seconds, requests and
# bytes the server received, objects and bytes the bucket holds
measure() {
        local sys=$1 phase=$2 bucket=$3 t0 t1 u0 u1 held
        shift 3
        u0=$(usage "$bucket")
        t0=$(now)
        "$@" >"$work/$sys-$phase.out" 2>&1 || { echo "warning: $sys $phase failed:" >&2; tail -n 5 "$work/$sys-$phase.out" >&2; }
        t1=$(now)
        u1=$(usage "$bucket")
        held=$(rgw_bucket_bytes "$bucket")
        res[$sys,$phase,secs]+="$(echo "$t1 - $t0" | bc) "
        res[$sys,$phase,reqs]+="$(($(cut -d' ' -f1 <<<"$u1") - $(cut -d' ' -f1 <<<"$u0"))) "
        res[$sys,$phase,sent]+="$(($(cut -d' ' -f2 <<<"$u1") - $(cut -d' ' -f2 <<<"$u0"))) "
        res[$sys,$phase,objects]+="${held% *} "
        res[$sys,$phase,held]+="${held#* } "
}

casfs_copy() { "$casfs" copy --verbose --jobs "$jobs" "$1" s3://casfs; }
rclone_copy() {
        # rclone 1.60 does not start with AWS_CA_BUNDLE in its environment
        env -u AWS_CA_BUNDLE RCLONE_CONFIG_RGW_TYPE=s3 RCLONE_CONFIG_RGW_PROVIDER=Ceph \
                RCLONE_CONFIG_RGW_ENDPOINT="$AWS_ENDPOINT_URL" RCLONE_CONFIG_RGW_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
                RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG_RGW_REGION="$AWS_REGION" \
                rclone copy --transfers 16 --skip-links --stats 0 "$1" rgw:rclone
}

for run in $(seq 1 "$runs"); do
        echo "publish run $run: starting the gateway ($((mem >> 20)) MiB of memory for objects) ..." >&2
        rgw_stop || true # the status of the last daemon it stopped
        rm -rf "$work/rgw"
        rgw_start "$work/rgw" "$mem"
        rgw_s3 PUT /casfs
        rgw_s3 PUT /rclone
        # odd runs casfs first, even runs rclone first
        order=(casfs rclone)
        [ $((run % 2)) -eq 1 ] || order=(rclone casfs)
        for phase in publish republish; do
                for s in "${order[@]}"; do
                        echo "run $run: $s $phase ..." >&2
                        if [ "$s" = casfs ]; then
                                measure casfs "$phase" casfs casfs_copy "$([ "$phase" = publish ] && echo "$store" || echo "$work/store-changed")"
                        else
                                measure rclone "$phase" rclone rclone_copy "$([ "$phase" = publish ] && echo "$corpus" || echo "$changed")"
                        fi
                done
        done
done

rgw_stop || true
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }

printf '\n%s: %s in %s files (%s entries), %s runs; casfs copy --jobs %s, rclone copy --transfers 16\n' \
        "$corpus" "$(mib "$corpus_bytes")" "$nfiles" "$entries" "$runs" "$jobs"
printf 'changed: %s files (1%%), %s in them, 16 bytes each\n\n' "$nchanged" "$(mib "$changed_bytes")"
printf '%-28s %14s %14s %10s\n' "" casfs rclone casfs/rclone
row() {
        local label=$1 phase=$2 key=$3 fmt=$4 c r
        c=$(median1 "${res[casfs,$phase,$key]}")
        r=$(median1 "${res[rclone,$phase,$key]}")
        case $fmt in
        s) printf '%-28s %13.2fs %13.2fs %10s\n' "$label" "$c" "$r" "$(ratio "$c" "$r")" ;;
        n) printf '%-28s %14d %14d %10s\n' "$label" "$c" "$r" "$(ratio "$c" "$r")" ;;
        b) printf '%-28s %14s %14s %10s\n' "$label" "$(mib "$c")" "$(mib "$r")" "$(ratio "$c" "$r")" ;;
        esac
}
row "publish: time" publish secs s
row "publish: PUT requests" publish reqs n
row "publish: bytes received" publish sent b
row "stored: objects" publish objects n
row "stored: bytes" publish held b
printf '%-28s %14s %14s\n' "stored / corpus size" "$(ratio "$(median1 "${res[casfs,publish,held]}")" "$corpus_bytes")" \
        "$(ratio "$(median1 "${res[rclone,publish,held]}")" "$corpus_bytes")"
row "republish 1%: time" republish secs s
row "republish 1%: PUT requests" republish reqs n
row "republish 1%: bytes received" republish sent b
printf '%-28s %14s %14s\n' "  / bytes in changed files" "$(ratio "$(median1 "${res[casfs,republish,sent]}")" "$changed_bytes")" \
        "$(ratio "$(median1 "${res[rclone,republish,sent]}")" "$changed_bytes")"
row "stored after: bytes" republish held b
echo
echo "casfs's own count (last run):"
grep -h '^copy: sent' "$work/casfs-publish.out" "$work/casfs-republish.out" | sed 's/^/  /'
fi

# ---------------------------------------------------------------- read part
want read || exit 0
[ "$(id -u)" -eq 0 ] || { echo "bench-remote: the read part needs root (drop_caches, mounts)" >&2; exit 1; }
all=(casfs rclone s3fs casfs-http casync casfs-local rclone-copy)
if [ -n "$only" ]; then
        read -r -a systems <<<"$only"
        for s in "${systems[@]}"; do
                [[ " ${all[*]} " == *" $s "* ]] || { echo "bench-remote: unknown system '$s' (one of: ${all[*]})" >&2; exit 2; }
        done
else
        systems=()
        for s in "${all[@]}"; do
                case $s in
                s3fs|casync) command -v "$s" >/dev/null || { echo "bench-remote: $s is not installed, left out" >&2; continue; } ;;
                esac
                systems+=("$s")
        done
fi
has() { [[ " ${systems[*]} " == *" $1 "* ]]; }
for s in "${systems[@]}"; do
        case $s in s3fs|casync) command -v "$s" >/dev/null || { echo "bench-remote: $s is missing" >&2; exit 1; } ;; esac
done
python=/usr/bin/python3
mkdir -p "$mnt"

# what the start-up rows load, picked on the local copy: 50 stdlib modules
# and 200 headers (bench/pick-startup.py), where the corpus has them
pyrel=$(cd "$corpus" && find . -maxdepth 4 -path '*/python3.*/os.py' -printf '%h\n' | sort | head -n 1)
pyrel=${pyrel#./}
increl=$(cd "$corpus" && find . -maxdepth 2 -name stdio.h -printf '%h\n' | sort | head -n 1)
increl=${increl#./}
modules= headers=
if [ -n "$pyrel" ]; then
        pyver=${pyrel##*/}
        if [ -x "/usr/bin/$pyver" ]; then
                python=/usr/bin/$pyver
                modules=$(PYTHON=$python "$python" "$repo/bench/pick-startup.py" modules "$corpus/$pyrel" 50 | tr '\n' ' ')
        fi
        [ -n "$modules" ] || echo "bench-remote: no $pyver to import $pyrel's modules with: no python row" >&2
fi
if [ -n "$increl" ]; then
        echo "picking 200 headers that compile together ..." >&2
        "$python" "$repo/bench/pick-startup.py" headers "$corpus/$increl" 200 >"$work/headers.list"
        headers=$(wc -l <"$work/headers.list")
        { sed 's/.*/#include <&>/' "$work/headers.list"; echo 'int main(void) { return 0; }'; } >"$work/startup.c"
fi
nmod=$(wc -w <<<"$modules")
multiarch=$(cc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
gccinc=$(cc -print-file-name=include)

# the rows: each takes the corpus's root in the mount
row_walk() { find "$1" -printf '%s %m %y\n' >/dev/null; }
row_read() { (cd "$1" && find . -type f -exec cat {} + | wc -c) >"$work/read.bytes"; }
row_python() {
        local r=$1/$pyrel
        PYTHONPATH=$r PYTHONDONTWRITEBYTECODE=1 "$python" -S -c "
import sys
mods = sys.argv[2:]
for m in mods:
    __import__(m)
out = [m for m in mods if not (getattr(sys.modules[m], '__file__', None) or '').startswith(sys.argv[1] + '/')]
import json
print(json.__file__)
sys.exit('loaded elsewhere: ' + ' '.join(out) if out else 0)" "$r" $modules >"$work/python.out"
}
row_cc() {
        cc -c -o /dev/null -nostdinc -isystem "$gccinc" -isystem "$1/$increl/$multiarch" -isystem "$1/$increl" "$work/startup.c"
}
rows=(walk read)
[ -n "$modules" ] && rows+=(python)
[ -n "$headers" ] && rows+=(cc)

echo "starting the servers and publishing ..." >&2
rgw_start "$work/rgw-read" $((corpus_bytes * 3 + (512 << 20)))
rgw_s3 PUT /casfs
rgw_s3 PUT /plain
rgw_port=$RGW_PORT
s3_endpoint=$AWS_ENDPOINT_URL
# rclone_env ENDPOINT: sets rcenv, the command that runs rclone with the
# remote rgw: on ENDPOINT ("${rcenv[@]}" rclone ...: env then rclone replace
# the shell's child, so $! of a background one is rclone's PID)
rclone_env() {
        # rclone 1.60 does not start with AWS_CA_BUNDLE in its environment
        rcenv=(env -u AWS_CA_BUNDLE RCLONE_CONFIG_RGW_TYPE=s3 RCLONE_CONFIG_RGW_PROVIDER=Ceph
                RCLONE_CONFIG_RGW_ENDPOINT="$1" RCLONE_CONFIG_RGW_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
                RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG_RGW_REGION="$AWS_REGION")
}
published=$work/published
"$casfs" copy --jobs "$jobs" "$store" s3://casfs >"$published" 2>&1
rclone_env "$s3_endpoint"
"${rcenv[@]}" rclone copy --transfers 16 --skip-links --stats 0 "$corpus" rgw:plain >>"$published" 2>&1
# a marker object per directory ('DIR/', with a mode and an mtime, as s3fs
# writes them): without them s3fs shows directories with mtime -1, and
# Python's import system, which takes -1 for 'never listed', then finds
# nothing in them. rclone skips the markers.
(cd "$corpus" && find . -mindepth 1 -type d -printf '%P/\n') | python3 -c '
import sys, urllib.parse
for line in sys.stdin:
    print("url = \"%s\"\noutput = \"/dev/null\"" % (sys.argv[1] + urllib.parse.quote(line.rstrip("\n"), safe="/")))
' "$s3_endpoint/plain/" >"$work/markers.curl"
curl -sS -X PUT --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -H "x-amz-meta-mode: 16877" -H "x-amz-meta-mtime: $(date +%s)" \
        -H "Content-Type: application/x-directory" --data-binary "" -K "$work/markers.curl" -w '%{http_code}\n' \
        >"$work/markers.codes" 2>&1 || true
echo "directory markers: $(grep -c '^200$' "$work/markers.codes") of $(grep -c '^url' "$work/markers.curl") stored" >&2
www=$work/www
mkdir -p "$www/casync"
"$casfs" copy --jobs "$jobs" "$store" "file://$www/casfs" >>"$published" 2>&1
if has casync; then
        casync make --store="$www/casync/corpus.castr" "$www/casync/corpus.caidx" "$corpus" >>"$published" 2>&1
fi
nginx_start "$work/nginx" "$www"
nginx_port=${NGINX_HTTP_URL##*:}
printf '%s\n' "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" >"$work/s3fs.passwd"
chmod 600 "$work/s3fs.passwd"
cache_opt=()
"$casfs" mount --help 2>&1 | grep -q -- '--cache ' && cache_opt=(--cache)

# start_proxy TARGET_PORT RTT NAME: a latency proxy; sets proxy_port
start_proxy() {
        rm -f "$work/$3.port"
        "$python" "$repo/bench/latency-proxy.py" --target "127.0.0.1:$1" --rtt "$2" \
                --port-file "$work/$3.port" --stats "$work/$3.stats" &
        proxies+=($!)
        for _ in $(seq 1 200); do
                [ -s "$work/$3.port" ] && break
                alive "${proxies[-1]}" || break
                sleep 0.05
        done
        [ -s "$work/$3.port" ] || { echo "bench-remote: the latency proxy did not start" >&2; exit 1; }
        proxy_port=$(cat "$work/$3.port")
}
# downloaded SYSTEM: bytes its proxy sent to the clients so far ('-' without one)
downloaded() {
        local f
        case $1 in
        casfs|rclone|s3fs|rclone-copy) f=$work/s3.stats ;;
        casfs-http|casync) f=$work/http.stats ;;
        *) echo -; return ;;
        esac
        sleep 0.3 # the proxy writes its counts every 0.1 s
        awk '{print $4}' "$f"
}

# mount_sys SYSTEM: mounts it with an empty cache, in the background; sets
# daemon and root (the corpus in the mount)
mount_sys() {
        local cache=$work/cache
        stop_daemon
        rm -rf "$cache"
        mkdir -p "$cache"
        case $1 in
        casfs)
                "$casfs" --store s3://casfs --s3-endpoint "http://127.0.0.1:$s3_proxy" mount -f \
                        ${cache_opt:+"${cache_opt[@]}" "$cache"} --log "$work/casfs.log" "$mnt" 2>>"$work/casfs.log" &
                root=$mnt/corpus ;;
        casfs-http)
                "$casfs" --store "http://127.0.0.1:$http_proxy/casfs" mount -f \
                        ${cache_opt:+"${cache_opt[@]}" "$cache"} --log "$work/casfs.log" "$mnt" 2>>"$work/casfs.log" &
                root=$mnt/corpus ;;
        casfs-local)
                "$casfs" --store "$store" mount -f --log "$work/casfs.log" "$mnt" 2>>"$work/casfs.log" &
                root=$mnt/corpus ;;
        rclone)
                rclone_env "http://127.0.0.1:$s3_proxy"
                "${rcenv[@]}" rclone mount rgw:plain "$mnt" --read-only --vfs-cache-mode full \
                        --cache-dir "$cache" >>"$work/rclone.log" 2>&1 &
                root=$mnt ;;
        s3fs)
                s3fs plain "$mnt" -f -o "ro,url=http://127.0.0.1:$s3_proxy,use_path_request_style" \
                        -o "passwd_file=$work/s3fs.passwd,use_cache=$cache,endpoint=$AWS_REGION" \
                        >>"$work/s3fs.log" 2>&1 &
                root=$mnt ;;
        casync)
                casync mount --store="http://127.0.0.1:$http_proxy/casync/corpus.castr" \
                        "http://127.0.0.1:$http_proxy/casync/corpus.caidx" "$mnt" >>"$work/casync.log" 2>&1 &
                root=$mnt ;;
        esac
        daemon=$!
        wait_mounted "$1"
}

# timed_row ROW ROOT: runs the row, capped at max_secs, in the background (a
# signal then ends the benchmark at once, and cleanup stops the row); sets t
# to its seconds, '>N' when it hit the cap, 'fail' when it failed
export -f row_walk row_read row_python row_cc
export work pyrel python modules multiarch gccinc increl
rowpid=
timed_row() {
        local t0 t1 rc=0
        t0=$(now)
        timeout -k 5 "$max_secs" bash -c 'row_'"$1"' "$1"' _ "$2" >/dev/null 2>"$work/row.err" &
        rowpid=$!
        wait "$rowpid" || rc=$?
        rowpid=
        t1=$(now)
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
                t=">$max_secs"
        elif [ "$rc" -ne 0 ]; then
                echo "bench-remote: $1 failed on $2: $(tail -n 3 "$work/row.err" | tr '\n' ' ')" >&2
                t=fail
        else
                t=$(echo "$t1 - $t0" | bc)
        fi
}

declare -A rd   # rd[RTT,SYSTEM,ROW] seconds, rd[RTT,SYSTEM,ROW,bytes] downloaded
for rtt in $rtts; do
        stop_proxies
        start_proxy "$rgw_port" "$rtt" s3
        s3_proxy=$proxy_port
        start_proxy "$nginx_port" "$rtt" http
        http_proxy=$proxy_port
        for s in "${systems[@]}"; do
                if [ "$s" = rclone-copy ]; then
                        echo "rtt $rtt ms: rclone copy --transfers 32 ..." >&2
                        rm -rf "$work/copy"
                        drop
                        b0=$(downloaded "$s")
                        t0=$(now)
                        rc=0
                        rclone_env "http://127.0.0.1:$s3_proxy"
                        "${rcenv[@]}" timeout -k 5 "$max_secs" rclone copy --transfers 32 --stats 0 rgw:plain "$work/copy" >>"$work/rclone.log" 2>&1 || rc=$?
                        t1=$(now)
                        case $rc in
                        0) rd[$rtt,$s,read]=$(echo "$t1 - $t0" | bc) ;;
                        124|137) rd[$rtt,$s,read]=">$max_secs" ;;
                        *) rd[$rtt,$s,read]=fail ;;
                        esac
                        rd[$rtt,$s,read,bytes]=$(( $(downloaded "$s") - b0 ))
                        rm -rf "$work/copy"
                        continue
                fi
                for r in "${rows[@]}"; do
                        echo "rtt $rtt ms: $s, $r ..." >&2
                        mount_sys "$s"
                        drop
                        b0=$(downloaded "$s")
                        timed_row "$r" "$root"
                        rd[$rtt,$s,$r]=$t
                        b1=$(downloaded "$s")
                        [ "$b0" = - ] || rd[$rtt,$s,$r,bytes]=$((b1 - b0))
                        if [ "$r" = read ] && [[ ${rd[$rtt,$s,$r]} != [\>f]* ]] && [ "$(cat "$work/read.bytes")" != "$corpus_bytes" ]; then
                                echo "bench-remote: $s read $(cat "$work/read.bytes") bytes, the corpus has $corpus_bytes" >&2
                        fi
                        if [ "$r" = python ] && [ "${rd[$rtt,$s,$r]}" != fail ] && [ -s "$work/python.out" ]; then
                                echo "  python loaded json from $(cat "$work/python.out")" >&2
                        fi
                        # warm: the system's cache as the cold row left it, the kernel's dropped
                        if [[ ${rd[$rtt,$s,$r]} != [\>f]* ]]; then
                                ws=
                                for ((k = 0; k < warm_runs; k++)); do
                                        drop
                                        timed_row "$r" "$root"
                                        [[ $t == [0-9.]* ]] || { ws=$t; break; }
                                        ws+=" $t"
                                        [ "$(echo "$t > 10" | bc)" = 0 ] || break
                                done
                                case $ws in
                                [\>f]*) rd[$rtt,$s,warm_$r]=$ws ;;
                                *) rd[$rtt,$s,warm_$r]=$(median1 "$ws")
                                   echo "  warm runs:$ws" >&2 ;;
                                esac
                                b2=$(downloaded "$s")
                                [ "$b0" = - ] || rd[$rtt,$s,warm_$r,bytes]=$((b2 - b1))
                        fi
                        stop_daemon
                done
        done
done
stop_proxies

# the reference of each system: the casfs over the same server
base_of() { case $1 in casync|casfs-http) echo casfs-http ;; *) echo casfs ;; esac; }
cell() {
        local v=${rd[$1,$2,$3]:-} b=${rd[$1,$(base_of "$2"),$3]:-}
        case $v in
        '') printf '%18s' - ;;
        '>'*|fail) printf '%18s' "$v" ;;
        *) if [ "$2" = "$(base_of "$2")" ] || [[ $b != [0-9.]* ]]; then printf '%18.2f' "$v"
           else printf '%10.2f (%5s)' "$v" "$(ratio "$v" "$b")"; fi ;;
        esac
}
mibs() { case $1 in ''|-) echo - ;; *) awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}' ;; esac; }
printf '\nread: %s, %s MiB in %s entries; rows capped at %s s\n' "$corpus" "$(mibs "$corpus_bytes")" "$entries" "$max_secs"
[ -z "$modules" ] || echo "python: $python -S, $nmod modules from the mount ($pyrel)"
[ -z "$headers" ] || echo "cc: one C file including $headers headers from the mount ($increl)"
declare -A labels=([walk]="walk" [read]="full read" [python]="python start-up" [cc]="cc $headers headers")
for rtt in $rtts; do
        printf '\nadded RTT %s ms: seconds (ratio to casfs over the same server)\n%-22s' "$rtt" ""
        for s in "${systems[@]}"; do printf '%18s' "$s"; done
        echo
        for w in cold warm; do
                p=; [ "$w" = cold ] || p=warm_
                for r in "${rows[@]}"; do
                        printf '%-22s' "$w ${labels[$r]}"
                        for s in "${systems[@]}"; do cell "$rtt" "$s" "$p$r"; done
                        echo
                done
        done
        printf 'MiB downloaded (the proxy'"'"'s count, server to client)\n'
        for w in cold warm; do
                p=; [ "$w" = cold ] || p=warm_
                for r in "${rows[@]}"; do
                        printf '%-22s' "$w ${labels[$r]}"
                        for s in "${systems[@]}"; do
                                # a row that hit the cap downloaded more than that
                                c=; [[ ${rd[$rtt,$s,$p$r]:-} != '>'* ]] || c='>'
                                printf '%18s' "$c$(mibs "${rd[$rtt,$s,$p$r,bytes]:-}")"
                        done
                        echo
                done
        done
        printf '%-22s' "cold full read / size"
        for s in "${systems[@]}"; do
                b=${rd[$rtt,$s,read,bytes]:-}
                c=; [[ ${rd[$rtt,$s,read]:-} != '>'* ]] || c='>'
                if [[ $b == [0-9]* ]]; then printf '%18s' "$c$(ratio "$b" "$corpus_bytes")"; else printf '%18s' -; fi
        done
        echo
done

# the figures the read part is judged by, from the table above
best_peer() { # RTT ROW SYSTEM...: the least seconds among the systems ('' when none finished)
        local rtt=$1 row=$2 s v best=
        shift 2
        for s in "$@"; do
                v=${rd[$rtt,$s,$row]:-}
                [[ $v == [0-9.]* ]] || continue
                if [ -z "$best" ] || [ "$(echo "$v < $best" | bc)" = 1 ]; then best=$v; fi
        done
        echo "$best"
}
peer_line() { # RTT ROW LABEL CASFS PEERS...: 'peer / casfs', or '>' when a peer hit the cap
        local rtt=$1 row=$2 label=$3 c=$4 b capped=
        shift 4
        has "$c" || return 0
        b=$(best_peer "$rtt" "$row" "$@")
        for s in "$@"; do
                if [[ ${rd[$rtt,$s,$row]:-} == '>'* ]]; then capped=" (a peer hit the cap of $max_secs s)"; fi
        done
        [ -n "$b" ] || { [ -z "$capped" ] || printf '  %-46s every peer hit the cap of %s s\n' "$label" "$max_secs"; return 0; }
        printf '  %-46s %s%s\n' "$label" "$(ratio "$b" "${rd[$rtt,$c,$row]:-}")" "$capped"
}
for rtt in $rtts; do
        printf '\nadded RTT %s ms, casfs against its peers (peer / casfs: how many times faster casfs is, against the fastest peer that finished)\n' "$rtt"
        for r in "${rows[@]}"; do
                peer_line "$rtt" "$r" "cold ${labels[$r]}, rclone|s3fs / casfs" casfs rclone s3fs
                peer_line "$rtt" "$r" "cold ${labels[$r]}, casync / casfs-http" casfs-http casync
        done
        if has casfs && has rclone-copy; then
                printf '  %-46s %s\n' "cold full read, casfs / rclone-copy" "$(ratio "${rd[$rtt,casfs,read]:-}" "${rd[$rtt,rclone-copy,read]:-}")"
        fi
        if has casfs && has casfs-local; then
                for r in "${rows[@]}"; do
                        printf '  %-46s %s\n' "warm ${labels[$r]}, casfs / casfs-local" \
                                "$(ratio "${rd[$rtt,casfs,warm_$r]:-}" "${rd[$rtt,casfs-local,warm_$r]:-}")"
                done
        fi
        if has casfs; then
                b=${rd[$rtt,casfs,read,bytes]:-}
                if [[ $b == [0-9]* ]]; then
                        printf '  %-46s %s\n' "cold full read, casfs bytes / corpus bytes" "$(ratio "$b" "$corpus_bytes")"
                fi
        fi
done
echo
echo "cold: a fresh mount with an empty cache, the kernel's caches dropped; warm: right after, on the same"
echo "mount, the system's own cache as the cold row left it, the kernel's caches dropped before each of"
echo "$warm_runs runs, their median (one run for a row over 10 s; the bytes: all runs'; casync has no cache"
echo "of its own; casfs-local reads its store on the local disk). rclone-copy: the plain objects copied to a"
echo "local folder, a full read's practical limit. casfs-http and casync are compared with each other (nginx);"
echo "the rest with casfs (RGW)."
