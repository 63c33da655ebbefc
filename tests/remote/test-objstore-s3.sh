#!/usr/bin/env bash
# The s3:// object store against a real Ceph RADOS Gateway started here on
# 127.0.0.1 (tests/lib/rgw.sh): SigV4 as RGW checks it, path-style requests,
# bucket creation, listings over several pages, refused credentials, a
# missing bucket, and secrets that never show in an error.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/rgw.sh"
. "$(dirname "$0")/../lib/nginx.sh"
TOOL=${OBJSTORE_TOOL:?set OBJSTORE_TOOL}

for p in ceph-mon ceph-osd radosgw; do
        command -v $p >/dev/null || { echo "$p missing: bash scripts/install-deps.sh" >&2; exit 1; }
done
rgw_start "$TMP/rgw" || exit 1
unset AWS_SESSION_TOKEN

# expect_error ERRNAME DESCRIPTION TOOL-ARGS...: fails with that errno (the
# last one a batch names)
expect_error() {
        local want=$1 what=$2 out
        shift 2
        out=$("$TOOL" "$@" 2>&1 >/dev/null)
        check_eq "$what" "$(sed -n 's/^objstore-tool: \([^ ]*: \)\{0,1\}\(E[A-Z0-9]*\): .*/\2/p' <<<"$out" | tail -n 1)" "$want"
        printf '%s\n' "$out" >"$TMP/last-error"
}

A=s3://casfs-objstore/pfx
B=s3://casfs-objstore
expect_error ENOENT "check of a missing bucket" "$A" check
check "the bucket is named" grep -q "no such bucket casfs-objstore" "$TMP/last-error"
expect_error ENOENT "get from a missing bucket" "$A" get roots/x
check "create the bucket" "$TOOL" "$A" create
check "create it again" "$TOOL" "$A" create
check "check" "$TOOL" "$A" check

# --- objects ---
printf 'hello, world' >"$TMP/small"
head -c 3000000 /dev/urandom >"$TMP/big"
check "put" "$TOOL" "$A" put chunks/b3/ab12/small "$TMP/small"
check "put 3 MB" "$TOOL" "$A" put chunks/b3/ab12/big "$TMP/big"
check_eq "get" "$("$TOOL" "$A" get chunks/b3/ab12/small)" "hello, world"
"$TOOL" "$A" get chunks/b3/ab12/big >"$TMP/out"
check "get 3 MB" cmp "$TMP/out" "$TMP/big"
check_eq "head" "$("$TOOL" "$A" head chunks/b3/ab12/big)" 3000000
"$TOOL" "$A" range chunks/b3/ab12/big 1234567 100000 >"$TMP/out"
tail -c +1234568 "$TMP/big" | head -c 100000 >"$TMP/want"
check "range" cmp "$TMP/out" "$TMP/want"
check_eq "range past the end" "$("$TOOL" "$A" range chunks/b3/ab12/small 100 10 | wc -c)" 0
check_eq "under the prefix" "$("$TOOL" "$B" get pfx/chunks/b3/ab12/small)" "hello, world"
expect_error ENOENT "missing object" "$A" get chunks/b3/ab12/none
check "the key is named" grep -q "s3://casfs-objstore/pfx: GET chunks/b3/ab12/none: HTTP 404 NoSuchKey" "$TMP/last-error"
expect_error ENOENT "missing object (head)" "$A" head chunks/b3/ab12/none
expect_error EFBIG "larger than max_size" "$A" get chunks/b3/ab12/big 1000
check "empty object" "$TOOL" "$A" put roots/empty /dev/null
check_eq "empty object read" "$("$TOOL" "$A" get roots/empty | wc -c)" 0

# keys that need encoding, in the path and in the listing's XML
odd='roots/a name+with&odd=chars%20~(ü)'
printf 'odd' >"$TMP/odd"
check "put an odd key" "$TOOL" "$A" put "$odd" "$TMP/odd"
check_eq "get an odd key" "$("$TOOL" "$A" get "$odd")" odd
check "list decodes it" grep -qxF "$odd 3" <<<"$("$TOOL" "$A" list roots/)"

# conditional gets
out=$("$TOOL" "$A" etag chunks/b3/ab12/small)
check "etag given" grep -q '^changed "' <<<"$out"
etag=${out#changed }
check_eq "unchanged" "$("$TOOL" "$A" etag chunks/b3/ab12/small "$etag")" unchanged
printf 'hello, again' >"$TMP/small2"
"$TOOL" "$A" put chunks/b3/ab12/small "$TMP/small2"
check "changed" grep -q '^changed "' <<<"$("$TOOL" "$A" etag chunks/b3/ab12/small "$etag")"

check "delete" "$TOOL" "$A" delete chunks/b3/ab12/small
expect_error ENOENT "deleted" "$A" get chunks/b3/ab12/small
check "delete of the absent" "$TOOL" "$A" delete chunks/b3/ab12/small

# --- batches and listings of more than one page ---
check_eq "batch of 1500 puts" "$("$TOOL" "$A" batch-put batch 1500)" "1500 done, 0 bad"
check_eq "batch of 1500 gets" "$("$TOOL" "$A" batch-get batch 1500)" "1500 done, 0 bad"
check_eq "batch of 1500 heads" "$("$TOOL" "$A" batch-head batch 1500)" "1500 done, 0 bad"
check_eq "list over pages" "$("$TOOL" "$A" list batch/ | wc -l)" 1500
check_eq "list sizes" "$("$TOOL" "$A" list batch/ | awk '{s += $2} END {print s}')" $((1499 * 1500 / 2))
check_eq "list, string prefix" "$("$TOOL" "$A" list batch/14 | wc -l)" 111
check_eq "list the bucket" "$("$TOOL" "$B" list pfx/batch/ | wc -l)" 1500
check_eq "list all (big, empty, odd and the batch)" "$("$TOOL" "$A" list | wc -l)" 1503
check_eq "8 threads" "$("$TOOL" "$A" stress chunks/b3/ab12/big 8 10)" "0 bad"

# --- refused ---
secret=$AWS_SECRET_ACCESS_KEY
AWS_SECRET_ACCESS_KEY=wrong-$secret expect_error EACCES "wrong secret" "$A" get chunks/b3/ab12/big
check "says so" grep -q "HTTP 403 SignatureDoesNotMatch" "$TMP/last-error"
check "no secret in the error" bash -c "! grep -qF -e '$secret' -e Signature= '$TMP/last-error'"
AWS_ACCESS_KEY_ID=NOSUCHKEY expect_error EACCES "unknown access key" "$A" get chunks/b3/ab12/big
check "says so" grep -q "InvalidAccessKeyId" "$TMP/last-error"
AWS_SECRET_ACCESS_KEY= AWS_ACCESS_KEY_ID= expect_error EACCES "anonymous" "$A" get chunks/b3/ab12/big
AWS_SECRET_ACCESS_KEY=wrong expect_error EACCES "wrong secret, batch" "$A" batch-get batch 3
# RGW takes a session token it did not issue as long as the keys are
# right: the header goes out, and never into an error line
check_eq "with a session token" "$(AWS_SESSION_TOKEN=casfs-test-token-123 "$TOOL" "$A" head chunks/b3/ab12/big)" 3000000
AWS_SESSION_TOKEN=casfs-test-token-123 AWS_SECRET_ACCESS_KEY=wrong \
        expect_error EACCES "a session token, wrong secret" "$A" head chunks/b3/ab12/big
check "no session token in the error" bash -c "! grep -q casfs-test-token-123 '$TMP/last-error'"

# --- endpoints ---
check_eq "endpoint as an option" "$(AWS_ENDPOINT_URL= "$TOOL" --s3-endpoint "http://127.0.0.1:$RGW_PORT" "$A" head chunks/b3/ab12/big)" 3000000
expect_error ECONNREFUSED "nothing listens" --s3-endpoint "http://127.0.0.1:$(rgw_free_port)" "$A" check

# --- over HTTPS: nginx in front of the gateway, with a CA made here ---
mkdir -p "$TMP/tls"
nginx_make_certs "$TMP/tls" 2>/dev/null
tls_port=$(rgw_free_port)
cat >"$TMP/tls/nginx.conf" <<CONF
user root;
worker_processes 1;
pid $TMP/tls/nginx.pid;
error_log $TMP/tls/error.log;
events { worker_connections 128; }
http {
        access_log off;
        client_body_temp_path $TMP/tls/body;
        proxy_temp_path $TMP/tls/proxy;
        fastcgi_temp_path $TMP/tls/fastcgi;
        uwsgi_temp_path $TMP/tls/uwsgi;
        scgi_temp_path $TMP/tls/scgi;
        server {
                listen 127.0.0.1:$tls_port ssl;
                ssl_certificate $TMP/tls/server.pem;
                ssl_certificate_key $TMP/tls/server.key;
                client_max_body_size 0;
                location / {
                        # the Host header as the client signed it
                        proxy_set_header Host \$http_host;
                        proxy_http_version 1.1;
                        proxy_pass http://127.0.0.1:$RGW_PORT;
                }
        }
}
CONF
nginx -p "$TMP/tls" -e "$TMP/tls/error.log" -c "$TMP/tls/nginx.conf" -g 'daemon off;' &
tls_pid=$!
cleanup_hooks+=("kill $tls_pid; wait $tls_pid")
E=https://127.0.0.1:$tls_port
for _ in $(seq 100); do
        "$TOOL" --s3-endpoint "$E" --ca-bundle "$TMP/tls/ca.pem" "$A" check 2>/dev/null && break
        sleep 0.1
done
check "check over HTTPS" "$TOOL" --s3-endpoint "$E" --ca-bundle "$TMP/tls/ca.pem" "$A" check
check "put over HTTPS" "$TOOL" --s3-endpoint "$E" --ca-bundle "$TMP/tls/ca.pem" "$A" put tls/big "$TMP/big"
AWS_ENDPOINT_URL=$E CASFS_CA_BUNDLE=$TMP/tls/ca.pem "$TOOL" "$A" get tls/big >"$TMP/out"
check "get over HTTPS" cmp "$TMP/out" "$TMP/big"
check_eq "list over HTTPS" "$("$TOOL" --s3-endpoint "$E" --ca-bundle "$TMP/tls/ca.pem" "$A" list batch/ | wc -l)" 1500
check_eq "batch over HTTPS" "$("$TOOL" --s3-endpoint "$E" --ca-bundle "$TMP/tls/ca.pem" "$A" batch-get batch 200)" "200 done, 0 bad"
expect_error EIO "unknown CA refused" --s3-endpoint "$E" "$A" get tls/big
check "certificate named" grep -qi "certificate" "$TMP/last-error"

finish
