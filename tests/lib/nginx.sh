# nginx on 127.0.0.1 serving a folder read-only over http and https (a CA and
# a server certificate for 127.0.0.1 and localhost, made with openssl in the
# state folder), with Range requests (nginx's static files), started in the
# foreground of a background job and stopped by its PID.
#
# Usage (bash):
#
#       . tests/lib/nginx.sh
#       nginx_start "$TMP/nginx" ROOT     # serves ROOT at /
#       # now exported: NGINX_HTTP_URL (http://127.0.0.1:PORT),
#       #   NGINX_HTTPS_URL (https://127.0.0.1:PORT), NGINX_CA (the CA's
#       #   certificate, PEM: what a client needs to trust the server)
#       curl --cacert "$NGINX_CA" "$NGINX_HTTPS_URL/some/file"
#       nginx_requests                    # requests served so far (access log)
#       nginx_stop                        # also run on exit (see below)
#
# When sourced after tests/lib/lib.sh, nginx_stop is registered as a cleanup
# hook, so nginx is stopped also when a test fails; elsewhere call it from
# your own trap. One nginx per shell.

NGINX_PID=
NGINX_DIR=

nginx_free_port() {
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nginx_make_certs DIR: DIR/ca.pem, DIR/server.pem, DIR/server.key
nginx_make_certs() {
        local d=$1
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=casfs test CA" \
                -keyout "$d/ca.key" -out "$d/ca.pem" \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
                openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
                        -keyout "$d/server.key" -out "$d/server.csr" &&
                printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
                        "extendedKeyUsage=serverAuth" >"$d/server.ext" &&
                openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
                        -days 2 -extfile "$d/server.ext" -out "$d/server.pem"
}

# nginx_start DIR ROOT
nginx_start() {
        local dir=$1 root http https user=
        mkdir -p "$dir/tmp"
        NGINX_DIR=$(cd "$dir" && pwd)
        root=$(cd "$2" && pwd) || return 1
        nginx_make_certs "$NGINX_DIR" >"$NGINX_DIR/openssl.out" 2>&1 || {
                echo "nginx: could not make the certificates" >&2
                cat "$NGINX_DIR/openssl.out" >&2
                return 1
        }
        http=$(nginx_free_port)
        https=$(nginx_free_port)
        while [ "$https" = "$http" ]; do https=$(nginx_free_port); done
        # as root, the workers would run as nobody, who cannot enter a test's private folder
        [ "$(id -u)" -ne 0 ] || user="user root;"
        cat >"$NGINX_DIR/nginx.conf" <<EOF
$user
worker_processes 1;
error_log $NGINX_DIR/error.log;
pid $NGINX_DIR/nginx.pid;
events { worker_connections 512; }
http {
        access_log $NGINX_DIR/access.log;
        client_body_temp_path $NGINX_DIR/tmp/body;
        proxy_temp_path $NGINX_DIR/tmp/proxy;
        fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
        uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
        scgi_temp_path $NGINX_DIR/tmp/scgi;
        types { }
        default_type application/octet-stream;
        sendfile on;
        keepalive_requests 100000;
        server {
                listen 127.0.0.1:$http;
                listen 127.0.0.1:$https ssl;
                server_name localhost;
                ssl_certificate $NGINX_DIR/server.pem;
                ssl_certificate_key $NGINX_DIR/server.key;
                root $root;
                autoindex off;
        }
}
EOF
        if declare -p cleanup_hooks >/dev/null 2>&1; then
                case " ${cleanup_hooks[*]} " in
                *" nginx_stop "*) ;;
                *) cleanup_hooks+=(nginx_stop) ;;
                esac
        fi
        nginx -e "$NGINX_DIR/error.log" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -g 'daemon off;' \
                >"$NGINX_DIR/nginx.out" 2>&1 &
        NGINX_PID=$!
        local i
        for i in $(seq 1 100); do
                if curl -s -o /dev/null "http://127.0.0.1:$http/" &&
                        curl -s -o /dev/null --cacert "$NGINX_DIR/ca.pem" "https://127.0.0.1:$https/"; then
                        export NGINX_HTTP_URL=http://127.0.0.1:$http
                        export NGINX_HTTPS_URL=https://127.0.0.1:$https
                        export NGINX_CA=$NGINX_DIR/ca.pem
                        return 0
                fi
                kill -0 "$NGINX_PID" 2>/dev/null || break
                sleep 0.1
        done
        echo "nginx: does not answer on 127.0.0.1:$http and :$https" >&2
        cat "$NGINX_DIR/nginx.out" "$NGINX_DIR/error.log" >&2 2>/dev/null
        return 1
}

# nginx_requests: how many requests nginx has served (lines of its access log)
nginx_requests() { wc -l <"$NGINX_DIR/access.log"; }

# nginx_stop: SIGQUIT (graceful), SIGKILL after 5 s; the workers follow the master
nginx_stop() {
        local workers
        [ -n "$NGINX_PID" ] || return 0
        # every step may fail (already gone): none may end a caller under set -e
        workers=$(pgrep -P "$NGINX_PID" || true)
        kill -QUIT "$NGINX_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        # shellcheck disable=SC2086
        kill -KILL "$NGINX_PID" $workers 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=
}
