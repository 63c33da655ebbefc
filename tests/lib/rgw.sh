# A throw-away Ceph RADOS Gateway (S3 API) on 127.0.0.1, for tests and
# benchmarks: one monitor, one OSD keeping its objects in memory (memstore),
# one radosgw, each started in the foreground of a background job and stopped
# by its PID. Everything (ceph.conf, keyrings, data, logs, admin sockets) lives
# in the folder given to rgw_start. No manager daemon.
#
# Usage (bash):
#
#       . tests/lib/rgw.sh
#       rgw_start "$TMP/rgw" [MEMSTORE_BYTES]   # default 512 MiB of objects
#       # now exported: AWS_ENDPOINT_URL (http://127.0.0.1:PORT),
#       #   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (us-east-1),
#       #   RGW_DIR, RGW_PORT
#       rgw_s3 PUT /bucket                       # curl --aws-sigv4: make a bucket
#       rgw_s3 PUT /bucket/key -T file           # put an object
#       rgw_s3 GET /bucket/key -o out            # get it
#       rgw_list bucket [PREFIX]                 # 'SIZE KEY' per object
#       rgw_list_full bucket [PREFIX]            # 'KEY SIZE LAST-MODIFIED ETAG'
#       rgw_bucket_bytes bucket [PREFIX]         # 'OBJECTS BYTES'
#       rgw_user_create UID ACCESS SECRET        # another user
#       rgw_stop                                 # also run on exit (see below)
#
# When sourced after tests/lib/lib.sh, rgw_stop is registered as a cleanup
# hook, so the daemons are stopped also when a test fails; elsewhere call it
# from your own trap. rgw_start returns non-zero (and prints the tail of the
# daemons' logs) when the gateway does not answer within RGW_START_TIMEOUT
# seconds (default 120). Several gateways may run at once (one per folder,
# free ports), but one per shell: the PIDs are kept in shell variables.

RGW_PIDS=()
RGW_DIR=
RGW_PORT=

# rgw_free_port: a TCP port on 127.0.0.1 that nothing listens on now
rgw_free_port() {
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rgw_ceph() { ceph -c "$RGW_DIR/ceph.conf" --connect-timeout 30 "$@"; }

rgw_logs() {
        local f
        for f in "$RGW_DIR"/*.log "$RGW_DIR"/*.out; do
                [ -s "$f" ] || continue
                echo "--- $f (last lines)" >&2
                tail -n 15 "$f" >&2
        done
}

# rgw_start DIR [MEMSTORE_BYTES]
rgw_start() {
        local dir=$1 bytes=${2:-536870912} mon_port fsid i deadline
        mkdir -p "$dir"
        RGW_DIR=$(cd "$dir" && pwd)
        mon_port=$(rgw_free_port)
        RGW_PORT=$(rgw_free_port)
        while [ "$RGW_PORT" = "$mon_port" ]; do RGW_PORT=$(rgw_free_port); done
        fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
        mkdir -p "$RGW_DIR/mon.a" "$RGW_DIR/osd.0" "$RGW_DIR/rgw" "$RGW_DIR/run"
        cat > "$RGW_DIR/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $RGW_DIR/keyring
run dir = $RGW_DIR/run
admin socket = $RGW_DIR/run/\$name.asok
log file = $RGW_DIR/\$name.log
pid file = $RGW_DIR/run/\$name.pid
crash dir = $RGW_DIR/crash
log to stderr = false
err to stderr = true
debug ms = 0
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
mon warn on pool no redundancy = false

[mon]
mon data = $RGW_DIR/mon.\$id

[osd]
osd data = $RGW_DIR/osd.\$id
osd objectstore = memstore
memstore device bytes = $bytes
osd max object name len = 460
osd max object namespace len = 64
osd heartbeat grace = 60

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $RGW_DIR/rgw
rgw dns name = localhost
rgw enable usage log = true
rgw usage log flush threshold = 1
rgw usage log tick interval = 1
EOF
        # every key in one keyring; the monitor imports them (with their caps) at mkfs
        ceph-authtool --create-keyring "$RGW_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null &&
                ceph-authtool "$RGW_DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' \
                        --cap osd 'allow *' --cap mgr 'allow *' >/dev/null &&
                ceph-authtool "$RGW_DIR/keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' \
                        --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null &&
                ceph-authtool "$RGW_DIR/keyring" --gen-key -n client.rgw.a --cap mon 'allow rw' \
                        --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null &&
                monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$RGW_DIR/monmap" >/dev/null &&
                ceph-mon -c "$RGW_DIR/ceph.conf" --mkfs -i a --monmap "$RGW_DIR/monmap" \
                        --keyring "$RGW_DIR/keyring" >"$RGW_DIR/mkfs.out" 2>&1 || {
                echo "rgw: could not create the monitor" >&2
                rgw_logs
                return 1
        }
        if declare -p cleanup_hooks >/dev/null 2>&1; then
                case " ${cleanup_hooks[*]} " in
                *" rgw_stop "*) ;;
                *) cleanup_hooks+=(rgw_stop) ;;
                esac
        fi
        ceph-mon -c "$RGW_DIR/ceph.conf" -f -i a >"$RGW_DIR/mon.out" 2>&1 &
        RGW_PIDS+=($!)
        local osd_uuid
        osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
        # the OSD's id in the map, then its (in-memory) store
        if ! i=$(rgw_ceph osd create "$osd_uuid" 2>>"$RGW_DIR/setup.out") || [ "$i" != 0 ]; then
                echo "rgw: the monitor does not answer (osd create gave '${i:-}')" >&2
                rgw_logs
                return 1
        fi
        rgw_ceph osd crush add-bucket localhost host >/dev/null 2>>"$RGW_DIR/setup.out"
        rgw_ceph osd crush move localhost root=default >/dev/null 2>>"$RGW_DIR/setup.out"
        rgw_ceph osd crush add osd.0 1.0 host=localhost >/dev/null 2>>"$RGW_DIR/setup.out"
        ceph-osd -c "$RGW_DIR/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$RGW_DIR/mkfs.out" 2>&1 || {
                echo "rgw: could not create the OSD" >&2
                rgw_logs
                return 1
        }
        ceph-osd -c "$RGW_DIR/ceph.conf" -f -i 0 >"$RGW_DIR/osd.out" 2>&1 &
        RGW_PIDS+=($!)
        radosgw -c "$RGW_DIR/ceph.conf" -f -n client.rgw.a >"$RGW_DIR/rgw.out" 2>&1 &
        RGW_PIDS+=($!)
        deadline=$((SECONDS + ${RGW_START_TIMEOUT:-120}))
        until curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/"; do
                if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "${RGW_PIDS[2]}" 2>/dev/null; then
                        echo "rgw: the gateway does not answer on 127.0.0.1:$RGW_PORT" >&2
                        rgw_logs
                        return 1
                fi
                sleep 0.5
        done
        export AWS_ENDPOINT_URL=http://127.0.0.1:$RGW_PORT
        export AWS_REGION=us-east-1
        export AWS_ACCESS_KEY_ID=CASFSTESTACCESSKEY00
        export AWS_SECRET_ACCESS_KEY=casfs-test-secret-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
        export RGW_DIR RGW_PORT
        rgw_user_create casfs "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" || {
                echo "rgw: could not create the user" >&2
                rgw_logs
                return 1
        }
}

# rgw_user_create UID ACCESS_KEY SECRET_KEY
rgw_user_create() {
        radosgw-admin -c "$RGW_DIR/ceph.conf" -n client.admin user create --uid "$1" --display-name "$1" \
                --access-key "$2" --secret-key "$3" >"$RGW_DIR/user-$1.json" 2>>"$RGW_DIR/setup.out"
}

# rgw_s3 METHOD PATH [CURL ARGS...]: one signed request (path-style) with the
# exported keys; fails on an HTTP error
rgw_s3() {
        local method=$1 path=$2
        shift 2
        curl -sS --fail -X "$method" --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
                --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@" "$AWS_ENDPOINT_URL$path"
}

# rgw_urlencode STRING
rgw_urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# rgw_list BUCKET [PREFIX]: 'SIZE KEY' per object (every page), sorted by key
rgw_list() { rgw_list_full "$@" | awk '{print $2, $1}'; }

# rgw_list_full BUCKET [PREFIX]: 'KEY SIZE LAST-MODIFIED ETAG' per object,
# sorted by key (keys with spaces are not supported here)
rgw_list_full() {
        local bucket=$1 prefix=${2:-} marker= q out
        while :; do
                # parameters sorted and none empty: curl signs the query as it is
                q=
                [ -z "$marker" ] || q+="marker=$(rgw_urlencode "$marker")&"
                q+="max-keys=1000"
                [ -z "$prefix" ] || q+="&prefix=$(rgw_urlencode "$prefix")"
                out=$(rgw_s3 GET "/$bucket?$q") || return 1
                python3 -c '
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
last = ""
for c in root.iter(ns + "Contents"):
    last = c.findtext(ns + "Key")
    print(last, c.findtext(ns + "Size"), c.findtext(ns + "LastModified"), c.findtext(ns + "ETag").strip(chr(34)))
sys.stderr.write(last if root.findtext(ns + "IsTruncated") == "true" else "")
' <<<"$out" 2>"$RGW_DIR/list.next" || return 1
                marker=$(cat "$RGW_DIR/list.next")
                [ -n "$marker" ] || break
        done | sort -k1,1
}

# rgw_bucket_bytes BUCKET [PREFIX]: 'OBJECTS BYTES' stored under the prefix
rgw_bucket_bytes() {
        rgw_list "$@" | awk '{n++; b += $1} END {printf "%d %d\n", n, b}'
}

# rgw_stop: stops the daemons (gateway, OSD, monitor) by PID: SIGTERM, then
# SIGKILL after 10 s
rgw_stop() {
        local i pid
        # every step may fail (a daemon already gone): none may end a caller under set -e
        for ((i = ${#RGW_PIDS[@]} - 1; i >= 0; i--)); do
                pid=${RGW_PIDS[i]}
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        RGW_PIDS=()
}
