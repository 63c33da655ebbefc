#!/usr/bin/env bash
# The http(s):// object store against real servers started here on
# 127.0.0.1: nginx serving a folder over HTTP and HTTPS (a CA made here with
# openssl), and a hostile server (hostile-http.py) for retries, redirects,
# stalls and oversized answers.
. "$(dirname "$0")/../lib/lib.sh"
TOOL=${OBJSTORE_TOOL:?set OBJSTORE_TOOL}
HERE=$(cd "$(dirname "$0")" && pwd)

command -v nginx >/dev/null || { echo "nginx missing: bash scripts/install-deps.sh" >&2; exit 1; }

free_port() {
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for DESCRIPTION COMMAND...: up to 10 s
wait_for() {
        local what=$1 i
        shift
        for i in $(seq 100); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        echo "$what did not come up" >&2
        return 1
}

# --- content ---
www=$TMP/www
mkdir -p "$www/cas/chunks/b3/ab12" "$www/cas/batch" "$www/cas/roots"
printf 'hello, world' > "$www/cas/chunks/b3/ab12/small"
head -c 3000000 /dev/urandom > "$www/cas/chunks/b3/ab12/big"
printf 'root v1' > "$www/cas/roots/main"
mkdir -p "$www/odd dir+x"
printf 'odd' > "$www/odd dir+x/a b"
python3 - "$www/cas/batch" <<'PY'
import sys
for i in range(300):
    open("%s/%d" % (sys.argv[1], i), "wb").write(bytes((i + k) % 256 for k in range(i)))
PY

# --- a CA and a certificate for 127.0.0.1 ---
pki=$TMP/pki
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=casfs-test-ca \
        -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
        -keyout "$pki/server.key" -out "$pki/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$pki/ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 2 -extfile "$pki/ext" -out "$pki/server.pem" 2>/dev/null
check "test CA made" test -s "$pki/server.pem"

# --- nginx ---
http_port=$(free_port)
https_port=$(free_port)
mkdir -p "$TMP/nginx"
cat > "$TMP/nginx/nginx.conf" <<CONF
user root;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 128; }
http {
        log_format conn '\$connection \$request_uri';
        access_log $TMP/nginx/access.log conn;
        client_body_temp_path $TMP/nginx/body;
        proxy_temp_path $TMP/nginx/proxy;
        fastcgi_temp_path $TMP/nginx/fastcgi;
        uwsgi_temp_path $TMP/nginx/uwsgi;
        scgi_temp_path $TMP/nginx/scgi;
        keepalive_requests 10000;
        server {
                listen 127.0.0.1:$http_port;
                root $www;
                location = /cas/moved { return 301 /cas/chunks/b3/ab12/small; }
                location = /cas/loop { return 302 /cas/loop; }
        }
        server {
                listen 127.0.0.1:$https_port ssl;
                ssl_certificate $pki/server.pem;
                ssl_certificate_key $pki/server.key;
                root $www;
        }
}
CONF
nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
cleanup_hooks+=("kill $nginx_pid; wait $nginx_pid")

# --- the hostile server ---
python3 "$HERE/hostile-http.py" "$TMP/hostile.port" "$TMP/hostile.log" &
hostile_pid=$!
cleanup_hooks+=("kill $hostile_pid; wait $hostile_pid")

H=http://127.0.0.1:$http_port/cas
S=https://127.0.0.1:$https_port/cas
wait_for nginx "$TOOL" "$H" check
wait_for "hostile server" test -s "$TMP/hostile.port"
X=http://127.0.0.1:$(cat "$TMP/hostile.port")

# expect_error ERRNAME DESCRIPTION TOOL-ARGS...: fails with that errno (the
# last one a batch names)
expect_error() {
        local want=$1 what=$2 out
        shift 2
        out=$("$TOOL" "$@" 2>&1 >/dev/null)
        check_eq "$what" "$(sed -n 's/^objstore-tool: \([^ ]*: \)\{0,1\}\(E[A-Z0-9]*\): .*/\2/p' <<<"$out" | tail -n 1)" "$want"
        printf '%s\n' "$out" >"$TMP/last-error"
}

# --- plain reads ---
check "check" "$TOOL" "$H" check
"$TOOL" "$H" get chunks/b3/ab12/small >"$TMP/out"
check_eq "get" "$(cat "$TMP/out")" "hello, world"
"$TOOL" "$H" get chunks/b3/ab12/big >"$TMP/out"
check "get 3 MB" cmp "$TMP/out" "$www/cas/chunks/b3/ab12/big"
check_eq "head" "$("$TOOL" "$H" head chunks/b3/ab12/big)" 3000000
"$TOOL" "$H" range chunks/b3/ab12/big 1234567 100000 >"$TMP/out"
tail -c +1234568 "$www/cas/chunks/b3/ab12/big" | head -c 100000 >"$TMP/want"
check "range" cmp "$TMP/out" "$TMP/want"
"$TOOL" "$H" range chunks/b3/ab12/big 2999990 100 >"$TMP/out"
check_eq "range short at the end" "$(stat -c %s "$TMP/out")" 10
"$TOOL" "$H" range chunks/b3/ab12/big 3000000 100 >"$TMP/out"
check_eq "range past the end" "$(stat -c %s "$TMP/out")" 0
expect_error ENOENT "missing object" "$H" get chunks/b3/ab12/none
check "error names the key" grep -q "GET chunks/b3/ab12/none: HTTP 404" "$TMP/last-error"
expect_error ENOENT "missing object (head)" "$H" head chunks/b3/ab12/none
expect_error EFBIG "larger than max_size" "$H" get chunks/b3/ab12/big 2999999
check "exactly max_size" "$TOOL" "$H" get chunks/b3/ab12/big 3000000 >/dev/null
expect_error EROFS "put is refused" "$H" put roots/x "$TMP/out"
expect_error EROFS "delete is refused" "$H" delete roots/main
expect_error EOPNOTSUPP "no listing" "$H" list
expect_error ENOENT "check of a missing folder" "http://127.0.0.1:$http_port/nothing" check
check_eq "an escaped prefix, a key to escape" "$("$TOOL" "http://127.0.0.1:$http_port/odd%20dir+x" get "a b")" odd
expect_error ECONNREFUSED "nothing listens" "http://127.0.0.1:$(free_port)/cas" get roots/main

# --- conditional gets ---
out=$("$TOOL" "$H" etag roots/main)
check "etag given" grep -q '^changed "' <<<"$out"
etag=${out#changed }
check_eq "unchanged" "$("$TOOL" "$H" etag roots/main "$etag")" unchanged
sleep 1.1
printf 'root v2' > "$www/cas/roots/main"
check "changed" grep -q '^changed "' <<<"$("$TOOL" "$H" etag roots/main "$etag")"

# --- redirects ---
check_eq "a redirect is followed" "$("$TOOL" "$H" get moved)" "hello, world"
start=$SECONDS
expect_error EIO "redirect loop" "$H" get loop
check "redirect loop named" grep -q "too many redirects" "$TMP/last-error"
check_eq "5 hops are fine" "$("$TOOL" "$X" get hop/5)" landed
expect_error EIO "6 hops are too many" "$X" get hop/6
check "loops end at once" test $((SECONDS - start)) -lt 5

# --- HTTPS ---
expect_error EIO "unknown CA refused" "$S" get chunks/b3/ab12/small
check "certificate named" grep -qi "certificate" "$TMP/last-error"
check_eq "with --ca-bundle" "$("$TOOL" --ca-bundle "$pki/ca.pem" "$S" get chunks/b3/ab12/small)" "hello, world"
check_eq "with CASFS_CA_BUNDLE" "$(CASFS_CA_BUNDLE=$pki/ca.pem "$TOOL" "$S" get chunks/b3/ab12/small)" "hello, world"
"$TOOL" --ca-bundle "$pki/ca.pem" "$S" range chunks/b3/ab12/big 1234567 100000 >"$TMP/out"
check "range over HTTPS" cmp "$TMP/out" "$TMP/want"

# --- many threads and batches over reused connections ---
# connections_since LINE: distinct connections in nginx's log after that line
# (nginx logs a request once its answer is out: the last lines may come a
# moment after the client is done, so both wait for the log to settle)
log_settle() {
        local a b
        b=$(wc -l <"$TMP/nginx/access.log")
        for _ in $(seq 30); do
                sleep 0.1
                a=$(wc -l <"$TMP/nginx/access.log")
                [ "$a" = "$b" ] && return
                b=$a
        done
}
log_lines() { log_settle; wc -l <"$TMP/nginx/access.log"; }
connections_since() { log_settle; tail -n +$(($1 + 1)) "$TMP/nginx/access.log" | awk '{print $1}' | sort -u | wc -l; }
n=$(log_lines)
check_eq "8 threads over HTTP" "$("$TOOL" "$H" stress chunks/b3/ab12/small 8 100)" "0 bad"
# each thread: 100 times a get, a range and a batch of 4 gets; at most one
# connection per thread for its own calls, and 4 per batch (40; without
# reuse it would be thousands)
check_eq "4801 requests" $(($(log_lines) - n)) 4801
check "over a few connections" test "$(connections_since "$n")" -le 48
echo "4801 requests from 8 threads over $(connections_since "$n") connections" >&2
n=$(log_lines)
check_eq "8 threads over HTTPS" "$("$TOOL" --ca-bundle "$pki/ca.pem" "$S" stress chunks/b3/ab12/small 8 50)" "0 bad"
check "over a few TLS connections" test "$(connections_since "$n")" -le 48
n=$(log_lines)
check_eq "batch of 300 gets" "$("$TOOL" "$H" batch-get batch 300)" "300 done, 0 bad"
check "a batch over at most jobs connections" test "$(connections_since "$n")" -le 32
check_eq "batch of 300 heads" "$("$TOOL" "$H" batch-head batch 300)" "300 done, 0 bad"
n=$(log_lines)
check_eq "batch over HTTPS, 4 jobs" "$("$TOOL" --jobs 4 --ca-bundle "$pki/ca.pem" "$S" batch-get batch 300)" "300 done, 0 bad"
check "4 jobs, 4 connections" test "$(connections_since "$n")" -le 4
echo "300 batch gets with 4 jobs over $(connections_since "$n") TLS connections" >&2
n=$(log_lines)
check_eq "5 batches in a row" "$("$TOOL" --jobs 4 "$H" batch-get batch 100 5 | sort | uniq -c | awk '{print $1, $2, $3, $4, $5}')" "5 100 done, 0 bad"
check "the next batch takes up the connections of the last" test "$(connections_since "$n")" -le 4
echo "5 batches of 100 gets with 4 jobs over $(connections_since "$n") connections" >&2
"$TOOL" "$H" batch-get batch 340 >"$TMP/out" 2>"$TMP/errors"
check_eq "a batch reports what is missing" "$(cat "$TMP/out")" "340 done, 40 bad"
check_eq "one line each" "$(grep -c ': ENOENT: ' "$TMP/errors")" 40
# each callback sees its own transfer's error line, though 40 end together
check_eq "each line names its key" "$(awk -F': ' '$2 != substr($5, 5) {print}' "$TMP/errors")" ""

# --- retries ---
check_eq "500 then 200" "$("$TOOL" "$X" get flaky/2/a)" "ok a"
check_eq "two attempts before" "$(grep -c '^/flaky/2/a$' "$TMP/hostile.log")" 3
start=$(date +%s%N)
check_eq "429 then 200" "$("$TOOL" "$X" get busy/1/b)" "ok b"
check "Retry-After is heeded" test $((($(date +%s%N) - start) / 1000000)) -ge 2000
check_eq "dropped connections then 200" "$("$TOOL" "$X" get reset/2/c)" "ok c"
expect_error EIO "always 500" --retries 2 "$X" get always500
check "500 named" grep -q "HTTP 500 InternalError" "$TMP/last-error"
check_eq "bounded retries" "$(grep -c '^/always500$' "$TMP/hostile.log")" 3
expect_error EACCES "403" "$X" get forbidden
check_eq "4xx is not retried" "$(grep -c '^/forbidden$' "$TMP/hostile.log")" 1
expect_error ENOENT "404" "$X" get nothing
check_eq "batch retries too" "$("$TOOL" "$X" batch-get flaky/1 1 2>&1)" "1 done, 1 bad"
check_eq "batch retried" "$(grep -c '^/flaky/1/0$' "$TMP/hostile.log")" 2

# --- stalls and oversized answers ---
start=$SECONDS
expect_error ETIMEDOUT "stalled body" --timeout 2 --retries 1 "$X" get stall-body
expect_error ETIMEDOUT "stalled headers" --timeout 2 --retries 1 "$X" get stall-headers
check "stalls end in time" test $((SECONDS - start)) -lt 20
expect_error EFBIG "Content-Length over max_size" "$X" get big 1000000
start=$SECONDS
expect_error EFBIG "endless body" "$X" get endless 1000000
check "endless body stopped early" test $((SECONDS - start)) -lt 10
check_eq "head of a large object" "$("$TOOL" "$X" head big)" $((100 << 20))

# the same in a batch: each transfer ends, with its own error
start=$SECONDS
expect_error ETIMEDOUT "batch, stalled server" --timeout 2 --retries 1 "$X" batch-get stall-headers 3
check_eq "batch, each stalled one" "$(grep -c ': ETIMEDOUT: ' "$TMP/last-error")" 3
check "batch stalls end in time" test $((SECONDS - start)) -lt 15
expect_error EIO "batch, redirect loop" "$X" batch-get loop 2
check "batch, redirect loop named" grep -q "too many redirects" "$TMP/last-error"
expect_error EFBIG "batch, oversized" "$X" batch-get big 2

# --- servers that get ranges wrong ---
check_eq "a server ignoring Range" "$("$TOOL" "$X" range norange 4 5)" "45678"
expect_error EIO "a range answer from elsewhere" "$X" range badrange 4 5

finish
