#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that adds a round-trip time to every connection.

    latency-proxy.py --target HOST:PORT --rtt MS [--port N] [--port-file FILE]
                     [--stats FILE]

Listens on 127.0.0.1 (--port, default 0: a free port, written to --port-file
once listening) and forwards each connection to the target. Each chunk read
from either side is stamped when it arrives and written to the other side
half the round trip later, in order, so that a request and its answer take
RTT more than without the proxy, whatever the number of connections; a new
connection's first bytes wait one more round trip (its TCP handshake's). The
kernel has no netem here, hence this.

--stats FILE: rewritten (atomically) whenever the counts changed, at most
every 0.1 s, and at exit: 'up BYTES down BYTES connections N', bytes sent by
the clients to the target (up) and by the target to the clients (down).
SIGTERM or SIGINT ends the proxy.
"""
import argparse
import asyncio
import os
import signal
import socket

CHUNK = 256 * 1024
QUEUE = 256  # chunks in flight per direction (the window of the delayed pipe)


class Stats:
    def __init__(self, path):
        self.path = path
        self.up = self.down = self.conns = 0
        self.written = None

    def write(self):
        if not self.path:
            return
        line = f"up {self.up} down {self.down} connections {self.conns}\n"
        if line == self.written:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(line)
        os.replace(tmp, self.path)
        self.written = line


async def pipe(reader, writer, src_writer, delay, count, not_before=0.0):
    """Copies reader to writer, each chunk written `delay` seconds after it was
    read (or after not_before, if later)."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue(QUEUE)

    async def read_side():
        try:
            while True:
                data = await reader.read(CHUNK)
                await queue.put((max(loop.time(), not_before) + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((loop.time() + delay, None))

    async def write_side():
        while True:
            when, data = await queue.get()
            wait = when - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:  # reset: close hard
                writer.transport.abort()
                src_writer.transport.abort()
                return
            if not data:  # end of stream: half-close
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            count(len(data))
            await writer.drain()

    rt = asyncio.ensure_future(read_side())
    try:
        await write_side()
    except (ConnectionError, OSError):
        # the receiver is gone: so is the connection, both ways
        writer.transport.abort()
        src_writer.transport.abort()
    finally:
        rt.cancel()


async def handle(client_r, client_w, args, stats):
    host, port = args.target.rsplit(":", 1)
    try:
        server_r, server_w = await asyncio.open_connection(host, int(port))
    except OSError:
        client_w.transport.abort()
        return
    for w in (client_w, server_w):
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stats.conns += 1
    delay = args.rtt / 2000.0
    # a new connection costs a round trip (the TCP handshake) before its
    # first byte leaves the client: what the client sends in that time waits
    handshake = asyncio.get_running_loop().time() + 2 * delay

    def up(n):
        stats.up += n

    def down(n):
        stats.down += n

    tasks = [asyncio.ensure_future(pipe(client_r, server_w, client_w, delay, up, handshake)),
             asyncio.ensure_future(pipe(server_r, client_w, server_w, delay, down))]
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for w in (client_w, server_w):
            w.close()


async def main():
    ap = argparse.ArgumentParser(description="TCP proxy adding a round-trip time")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--rtt", type=float, default=0, help="added round-trip time in ms")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--stats")
    args = ap.parse_args()
    stats = Stats(args.stats)
    stats.write()
    server = await asyncio.start_server(lambda r, w: handle(r, w, args, stats), "127.0.0.1", args.port,
                                        backlog=1024)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{server.sockets[0].getsockname()[1]}\n")
        os.replace(tmp, args.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
        stats.write()
    server.close()
    stats.write()


if __name__ == "__main__":
    asyncio.run(main())
