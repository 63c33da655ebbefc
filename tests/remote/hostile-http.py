#!/usr/bin/env python3
"""A web server that misbehaves on purpose, for the object-store tests.

    hostile-http.py PORTFILE LOGFILE

Listens on 127.0.0.1 (a free port, written to PORTFILE) and logs each
request's path to LOGFILE, one per line. Paths:
  /flaky/N/NAME     500 for the first N requests of NAME, then 200 "ok NAME"
  /busy/N/NAME      429 (Retry-After: 2) for the first N requests, then 200
  /always500        500 every time
  /forbidden        403
  /loop             302 to itself, forever
  /hop/N            302 to /hop/N-1; /hop/0 answers 200 "landed"
  /stall-body       headers, a few bytes, then nothing for 60 s
  /stall-headers    nothing at all for 60 s
  /big              Content-Length of 100 MiB (sends 1 MiB of it at most)
  /endless          chunked, without end (stops at 64 MiB)
  /reset/N/NAME     closes the connection without an answer N times, then 200
  /norange          ignores Range: always the whole body "0123456789abcdef"
  /badrange         answers a range request with 206 from the wrong offset
"""
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {}
lock = threading.Lock()
log = open(sys.argv[2], "a", buffering=1)


def seen(name):
    with lock:
        counts[name] = counts.get(name, 0) + 1
        return counts[name]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, body=b"", headers=()):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        log.write(self.path + "\n")
        parts = self.path.strip("/").split("/")
        what = parts[0]
        if what in ("flaky", "busy", "reset"):
            n, name = int(parts[1]), parts[2]
            if seen(what + name) <= n:
                if what == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.answer(500 if what == "flaky" else 429, b"try again",
                            headers=[("Retry-After", "2")] if what == "busy" else [])
                return
            self.answer(200, b"ok " + name.encode())
        elif what == "always500":
            self.answer(500, b"<Error><Code>InternalError</Code></Error>")
        elif what == "forbidden":
            self.answer(403, b"<Error><Code>AccessDenied</Code></Error>")
        elif what == "loop":
            self.answer(302, headers=[("Location", "/loop")])
        elif what == "hop":
            n = int(parts[1])
            if n == 0:
                self.answer(200, b"landed")
            else:
                self.answer(302, headers=[("Location", "/hop/%d" % (n - 1))])
        elif what == "stall-body":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"abc")
            self.wfile.flush()
            time.sleep(60)
        elif what == "stall-headers":
            time.sleep(60)
        elif what == "big":
            self.send_response(200)
            self.send_header("Content-Length", str(100 << 20))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(b"x" * (1 << 20))
                except OSError:
                    pass
            self.close_connection = True
        elif what == "endless":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"y" * 65536
            try:
                for _ in range(1024):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                pass
            self.close_connection = True
        elif what == "norange":
            self.answer(200, b"0123456789abcdef")
        elif what == "badrange":
            self.answer(206, b"0123", headers=[("Content-Range", "bytes 0-3/16")])
        else:
            self.answer(404, b"no")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
