#!/usr/bin/env bash
# Benchmark of publishing to a remote store, side by side in one run against
# a real S3 server (Ceph RGW on 127.0.0.1, tests/lib/rgw.sh, objects in
# memory): `casfs copy` from a local store to s3:// against `rclone copy
# --transfers 16` of the same files as plain objects. Then 1% of the files
# change (16 bytes overwritten in the middle of every 100th file) and both
# publish again. For each: the time, the requests and bytes the server
# received (RGW's usage log), and what the bucket holds (listing), against
# the corpus's size. Medians over the runs, ratios casfs / rclone.
#
#   bench/bench-remote.sh [--corpus DIR] [--scratch DIR] [--runs N] [--casfs PATH]
#                         [--jobs N] [--quick]
#
# Default corpus: copies of /usr/include, /usr/share/man, /usr/share/doc and
# /usr/lib/python3.* (about 40k entries) under the scratch folder (default
# /var/tmp/casfs-bench); --quick: /usr/include alone, one run. --jobs: casfs
# copy's transfers in flight (default 16, as rclone's). Each run starts a
# fresh gateway (the objects live in its memory, sized from the corpus).
# rclone copies no symlinks and no empty directories (the rclone bucket holds
# the regular files only); casfs publishes the whole tree.
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
corpus=
scratch=/var/tmp/casfs-bench
runs=3
jobs=16
quick=false
casfs=$repo/build/src/cli/casfs
while [ $# -gt 0 ]; do
        case $1 in
        --corpus) corpus=$2; shift 2 ;;
        --scratch) scratch=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --casfs) casfs=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --quick) quick=true; runs=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
        esac
done
for c in rclone radosgw ceph-mon ceph-osd curl; do
        command -v "$c" >/dev/null || { echo "bench-remote: $c is missing (scripts/install-deps.sh --bench)" >&2; exit 1; }
done
[ -x "$casfs" ] || (cd "$repo" && { [ -d build ] || meson setup build >/dev/null; } && ninja -C build >/dev/null)
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
cleanup() {
        rgw_stop
        rm -rf "$work"
}
trap cleanup EXIT

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

corpus_bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
entries=$(find "$corpus" -mindepth 1 | wc -l)
# the objects of both systems, the changes and room
mem=$((corpus_bytes * 3 + (512 << 20)))

echo "importing the corpus into a local store ..." >&2
store=$work/store
"$casfs" --store "$store" import -q --name corpus "$corpus" >/dev/null
"$casfs" --store "$work/store-changed" import -q --name corpus "$changed" >/dev/null

now() { date +%s.%N; }
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
        echo "run $run: starting the gateway ($((mem >> 20)) MiB of memory for objects) ..." >&2
        rgw_stop
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

median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }

printf '\n%s: %s in %s files (%s entries), %s runs; casfs copy --jobs %s, rclone copy --transfers 16\n' \
        "$corpus" "$(mib "$corpus_bytes")" "$nfiles" "$entries" "$runs" "$jobs"
printf 'changed: %s files (1%%), %s in them, 16 bytes each\n\n' "$nchanged" "$(mib "$changed_bytes")"
printf '%-28s %14s %14s %10s\n' "" casfs rclone casfs/rclone
row() {
        local label=$1 phase=$2 key=$3 fmt=$4 c r
        c=$(median "${res[casfs,$phase,$key]}")
        r=$(median "${res[rclone,$phase,$key]}")
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
printf '%-28s %14s %14s\n' "stored / corpus size" "$(ratio "$(median "${res[casfs,publish,held]}")" "$corpus_bytes")" \
        "$(ratio "$(median "${res[rclone,publish,held]}")" "$corpus_bytes")"
row "republish 1%: time" republish secs s
row "republish 1%: PUT requests" republish reqs n
row "republish 1%: bytes received" republish sent b
printf '%-28s %14s %14s\n' "  / bytes in changed files" "$(ratio "$(median "${res[casfs,republish,sent]}")" "$changed_bytes")" \
        "$(ratio "$(median "${res[rclone,republish,sent]}")" "$changed_bytes")"
row "stored after: bytes" republish held b
echo
echo "casfs's own count (last run):"
grep -h '^copy: sent' "$work/casfs-publish.out" "$work/casfs-republish.out" | sed 's/^/  /'
