#!/usr/bin/env python3
"""A web server serving a remote-store layout folder (SPEC.md §7, as a file://
store writes it) with broken answers on purpose, for the tests of what a
reader must refuse.

    hostile-server.py [--mode MODE] [--fail-count N] [--log FILE] --port-file FILE ROOT

A request for /MODE/KEY is answered in MODE about ROOT/KEY, where the first
path segment names a mode (so that one server serves every case: point the
reader at http://127.0.0.1:PORT/MODE); any other path is answered in the
startup --mode (default ok) about ROOT/PATH. A mode hits the objects of its
kind and serves the others intact; MODE@KIND (KIND: chunks, blobs, dirs or
roots, which includes roots.index) hits only objects of that kind:

    ok            every object as it is (Range requests too)
    flip          chunks: one byte of the content flipped (valid zstd, wrong bytes)
    bomb          chunks: the content followed by 256 MiB of zeros (a zstd bomb:
                  more than the chunk's stated size, no size in the frame header)
    blob-sizes    blobs: the first chunk's size one more (the sizes do not add up)
    dirs-untrusted dirs: the second frame replaced by a directory nobody names
    dirs-noncanonical roots, dirs: the top directory encoded non-canonically
                  (its first entry's fields in reverse order) under the digest
                  of those bytes, and the roots pointing at it
    oversized     every object: a Content-Length of 4 GiB, zeros sent until
                  the reader hangs up
    redirect      every request: 302 to the same path with one more ?r
    stall         chunks: the headers, then nothing (until the reader hangs up)
    flaky         every request: 500 for the first --fail-count (default 2)
                  requests of each path, then the object
    error         every request: 500, always
    reset         chunks: the connection reset (RST) after the request is read
    reset-once    every request: reset the first time a path is asked for
    truncated     chunks: a Content-Length of the object, half of it sent, closed

Writes 'METHOD PATH STATUS' per request to --log, and the port it listens on
(127.0.0.1) to --port-file once it accepts connections.
"""
import argparse
import http.server
import importlib.util
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

spec = importlib.util.spec_from_file_location(
    "encode_layout", os.path.join(os.path.dirname(os.path.abspath(__file__)), "encode-layout.py"))
L = importlib.util.module_from_spec(spec)
spec.loader.exec_module(L)

MODES = ("ok", "flip", "bomb", "blob-sizes", "dirs-untrusted", "dirs-noncanonical", "oversized",
         "redirect", "stall", "flaky", "error", "reset", "reset-once", "truncated")
BOMB_EXTRA = 256 << 20

args = None
counts = {}
lock = threading.Lock()
logf = None


def kind_of(key):
    for k in ("chunks", "blobs", "dirs"):
        if key.startswith(k + "/"):
            return k
    if key == "roots.index" or key.startswith("roots/"):
        return "roots"
    return None


def read(key):
    p = os.path.normpath(os.path.join(args.root, key))
    if not p.startswith(os.path.abspath(args.root) + os.sep) or not os.path.isfile(p):
        return None
    with open(p, "rb") as f:
        return f.read()


def bomb(data):
    """zstd of data + BOMB_EXTRA zeros, written as a stream (no content size)."""
    zeros = bytes(1 << 20)
    if L.zstandard:
        c = L.zstandard.ZstdCompressor(level=1, write_content_size=False).compressobj()
        out = [c.compress(data)]
        for _ in range(BOMB_EXTRA >> 20):
            out.append(c.compress(zeros))
        out.append(c.flush())
        return b"".join(out)
    import subprocess
    p = subprocess.Popen(["zstd", "-q", "-c", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    t = threading.Thread(target=lambda: (p.stdin.write(data), [p.stdin.write(zeros) for _ in range(BOMB_EXTRA >> 20)],
                                         p.stdin.close()))
    t.start()
    out = p.stdout.read()
    t.join()
    p.wait()
    return out


def noncanonical(directory):
    """The same directory, not canonical: its first entry's fields in reverse
    order (it decodes to the same message, which re-encodes otherwise)."""
    fields = L.parse_fields(directory)
    num, _, v = fields[0]
    sub = b"".join(L.varint(n << 3 | wt) + (L.varint(len(x)) + x if wt == 2 else L.varint(x))
                   for n, wt, x in reversed(L.parse_fields(v)))
    rest = directory[len(L.varint(num << 3 | 2) + L.varint(len(v)) + v):]
    return L.varint(num << 3 | 2) + L.varint(len(sub)) + sub + rest


def forge_noncanonical(key, data):
    """For dirs-noncanonical: roots pointing at a non-canonical top."""
    def forge_node(node):
        f = L.parse_fields(node)
        if not f or f[0][0] != 1:
            return node, None
        dn = {n: v for n, _, v in L.parse_fields(f[0][2])}
        top = dn.get(2, b"")
        z = read(L.key("dirs", top))
        if z is None:
            return node, None
        frames = L.unframe(L.unzstd(z))
        frames[0] = noncanonical(frames[0])
        new = L.b3(frames[0])
        with lock:
            forged[new] = L.zstd(L.frames(frames))
        return L.node_directory(dn.get(1, b""), new, dn.get(3, 0)), new
    if key == "roots.index":
        return L.frames([forge_node(n)[0] for n in L.unframe(data)])
    if key.startswith("roots/"):
        return forge_node(data)[0]
    return data


forged = {}  # digest -> the dirs object of a forged top


def mangle(mode, key, data):
    """The body to send in place of data (bytes), or None to serve data."""
    kind = kind_of(key)
    if mode == "flip" and kind == "chunks":
        c = bytearray(L.unzstd(data))
        c[len(c) // 2] ^= 0x01
        return L.zstd(bytes(c))
    if mode == "bomb" and kind == "chunks":
        return bomb(L.unzstd(data))
    if mode == "blob-sizes" and kind == "blobs":
        chunks = L.decode_blob_index(data)
        chunks[0] = (chunks[0][0], chunks[0][1] + 1)
        return L.blob_index(chunks)
    if mode == "dirs-untrusted" and kind == "dirs":
        frames = L.unframe(L.unzstd(data))
        evil = L.directory([], [(b"evil", L.b3(b"evil\n"), 5, False)], [])
        if len(frames) > 1:
            frames[1] = evil
        else:
            frames.append(evil)
        return L.zstd(L.frames(frames))
    if mode == "dirs-noncanonical" and kind == "roots":
        return forge_noncanonical(key, data)
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile/1"

    def log_message(self, fmt, *a):
        pass

    def log(self, status):
        if logf:
            with lock:
                logf.write("%s %s %s\n" % (self.command, self.path, status))
                logf.flush()

    def send_body(self, status, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for h, v in extra:
            self.send_header(h, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log(status)

    def wait_hangup(self, limit=300):
        """Until the reader closes the connection (or limit seconds)."""
        end = time.time() + limit
        self.connection.settimeout(1)
        while time.time() < end:
            try:
                if not self.connection.recv(4096):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def reset(self):
        self.log("reset")
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        parts = path.lstrip("/").split("/", 1)
        mode, _, only = parts[0].partition("@")
        if mode in MODES and only in ("", "chunks", "blobs", "dirs", "roots"):
            key = parts[1] if len(parts) > 1 else ""
        else:
            mode, only, key = args.mode, "", path.lstrip("/")
        kind = kind_of(key)
        if only and kind != only:
            mode = "ok"  # MODE@KIND: the other objects (and the folder) served intact
        with lock:
            n = counts[path] = counts.get(path, 0) + 1

        if mode == "redirect":
            self.send_body(302, b"", [("Location", self.path + ("&r" if "?" in self.path else "?r"))])
            return
        if mode == "error" or (mode == "flaky" and n <= args.fail_count):
            self.send_body(500, b"internal error\n")
            return
        if (mode == "reset" and kind == "chunks") or (mode == "reset-once" and n == 1):
            self.reset()
            return

        data = None
        if mode == "dirs-noncanonical" and kind == "dirs":
            with lock:
                data = forged.get(bytes.fromhex(key.rsplit("/", 1)[-1])) if len(key) > 64 else None
        if data is None:
            data = read(key)
        if data is None:
            p = os.path.normpath(os.path.join(args.root, key))
            if os.path.isdir(p) and (p + os.sep).startswith(args.root + os.sep):
                self.send_body(403, b"a folder: no listing\n")  # as nginx without autoindex
            else:
                self.send_body(404, b"no such object\n")
            return
        if mode == "stall" and kind == "chunks":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            self.log("stall")
            self.wait_hangup()
            self.close_connection = True
            return
        if mode == "oversized":
            self.send_response(200)
            self.send_header("Content-Length", str(4 << 30))
            self.end_headers()
            self.log("oversized")
            zeros = bytes(1 << 20)
            try:
                for _ in range(4 << 10 if self.command == "GET" else 0):
                    self.wfile.write(zeros)
            except OSError:
                pass
            self.close_connection = True
            return
        if mode == "truncated" and kind == "chunks" and self.command == "GET":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.log("truncated")
            self.close_connection = True
            return
        body = mangle(mode, key, data)
        if body is not None:
            data = body
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and "," not in rng:
            a, _, b = rng[6:].partition("-")
            try:
                if a:
                    start, end = int(a), (int(b) if b else len(data) - 1)
                else:
                    start, end = max(0, len(data) - int(b)), len(data) - 1
            except ValueError:
                start, end = 0, -1
            end = min(end, len(data) - 1)
            if start > end or start >= len(data):
                self.send_body(416, b"", [("Content-Range", "bytes */%d" % len(data))])
                return
            self.send_body(206, data[start:end + 1], [("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))])
            return
        self.send_body(200, data, [("Accept-Ranges", "bytes")])


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # readers open many connections at once: with the default backlog (5)
    # the kernel drops connections, which wait for SYN retransmits (1 s, 2 s...)
    request_queue_size = 256


def main():
    global args, logf
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", default="ok", choices=MODES)
    ap.add_argument("--fail-count", type=int, default=2)
    ap.add_argument("--log")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("root")
    args = ap.parse_args()
    args.root = os.path.abspath(args.root)
    if args.log:
        logf = open(args.log, "a")
    srv = Server(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
