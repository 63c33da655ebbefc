#!/usr/bin/env python3
"""An encoder of the remote-store layout (SPEC.md §7) written apart from
casfs's C code, from the specification alone: hand-written protobuf, BLAKE3 by
the b3sum command, zstd by python3-zstandard, and fixed-size chunks (64 KiB by
default), unlike casfs's content-defined ones. Writes a file:// folder:

    encode-layout.py [--chunk-size N] [--no-content-size] OUT NAME=SOURCE...

    OUT/chunks/b3/HHHH/<hex>   zstd of each chunk, named by BLAKE3 of its bytes
    OUT/blobs/b3/HHHH/<hex>    StatBlobResponse { repeated ChunkMeta chunks = 2 }
                               for each blob of more than one chunk
    OUT/dirs/b3/HHHH/<hex>     for each root directory: zstd of frames
                               (u32 big-endian length, canonical Directory),
                               top first, breadth first, each directory once
    OUT/roots/<name>           the root's Node message
    OUT/roots.index            frames (u32 big-endian length, Node) of every root,
                               for readers that cannot list (http)

Prints 'NAME DIGEST' per root (digest as blake3-<base64>; 'NAME symlink
TARGET' for a symlink), as casfs import does. Also a module: hostile-server.py uses its codec to forge objects.
"""
import argparse
import base64
import os
import stat
import struct
import subprocess
import sys
import tempfile

try:
    import zstandard  # Debian's python3-zstandard
except ImportError:  # another python3 first in PATH: the zstd command instead
    zstandard = None

# ---- protobuf, by hand (proto3: defaults omitted, varints minimal) ----


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, value):
    """A length-delimited field; empty bytes are a default and not written."""
    if not value:
        return b""
    return varint(num << 3 | 2) + varint(len(value)) + value


def field_varint(num, value):
    if not value:
        return b""
    return varint(num << 3 | 0) + varint(int(value))


def read_varint(buf, pos):
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def parse_fields(buf):
    """[(field number, wire type, value)]: bytes for type 2, int for type 0."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = read_varint(buf, pos)
        elif wt == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated field")
            v, pos = buf[pos:pos + n], pos + n
        else:
            raise ValueError("unexpected wire type %d" % wt)
        out.append((num, wt, v))
    return out


def directory_node(name, digest, size):
    return field_bytes(1, name) + field_bytes(2, digest) + field_varint(3, size)


def file_node(name, digest, size, executable):
    return field_bytes(1, name) + field_bytes(2, digest) + field_varint(3, size) + field_varint(4, executable)


def symlink_node(name, target):
    return field_bytes(1, name) + field_bytes(2, target)


def directory(dirs, files, symlinks):
    """dirs: [(name, digest, size)], files: [(name, digest, size, exec)],
    symlinks: [(name, target)]; each list sorted by name (bytes)."""
    return (b"".join(field_bytes(1, directory_node(*d)) for d in sorted(dirs)) +
            b"".join(field_bytes(2, file_node(*f)) for f in sorted(files)) +
            b"".join(field_bytes(3, symlink_node(*s)) for s in sorted(symlinks)))


def decode_directory(buf):
    """(dirs, files, symlinks) as directory() takes them (no validation)."""
    dirs, files, symlinks = [], [], []
    for num, _, v in parse_fields(buf):
        f = {n: val for n, _, val in parse_fields(v)}
        if num == 1:
            dirs.append((f.get(1, b""), f.get(2, b""), f.get(3, 0)))
        elif num == 2:
            files.append((f.get(1, b""), f.get(2, b""), f.get(3, 0), bool(f.get(4, 0))))
        elif num == 3:
            symlinks.append((f.get(1, b""), f.get(2, b"")))
    return dirs, files, symlinks


def node_directory(name, digest, size):
    return field_bytes(1, directory_node(name, digest, size))


def node_file(name, digest, size, executable):
    return field_bytes(2, file_node(name, digest, size, executable))


def node_symlink(name, target):
    return field_bytes(3, symlink_node(name, target))


def blob_index(chunks):
    """StatBlobResponse { repeated ChunkMeta chunks = 2 }, ChunkMeta { bytes digest = 1; uint64 size = 2 }"""
    return b"".join(field_bytes(2, field_bytes(1, d) + field_varint(2, n)) for d, n in chunks)


def decode_blob_index(buf):
    out = []
    for num, _, v in parse_fields(buf):
        if num == 2:
            f = {n: val for n, _, val in parse_fields(v)}
            out.append((f.get(1, b""), f.get(2, 0)))
    return out


def frames(items):
    return b"".join(struct.pack(">I", len(b)) + b for b in items)


def unframe(buf):
    out, pos = [], 0
    while pos < len(buf):
        (n,) = struct.unpack(">I", buf[pos:pos + 4])
        out.append(buf[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


# ---- BLAKE3 (the b3sum command), zstd ----


def b3_many(blobs):
    """BLAKE3 digests (32 bytes each) of a list of byte strings, one b3sum run."""
    if not blobs:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, b in enumerate(blobs):
            p = os.path.join(tmp, str(i))
            with open(p, "wb") as f:
                f.write(b)
            paths.append(p)
        return b3_files(paths)


def b3_files(paths):
    out = []
    for i in range(0, len(paths), 500):
        res = subprocess.run(["b3sum", "--no-names", "--"] + paths[i:i + 500], check=True,
                             stdout=subprocess.PIPE).stdout.decode().split()
        out += [bytes.fromhex(h) for h in res]
    assert len(out) == len(paths)
    return out


def b3(data):
    return b3_many([data])[0]


# False: frames without the content's size in their header, as a streaming
# compressor writes them (the zstd command reading a pipe always does)
CONTENT_SIZE = True


def zstd(data):
    if zstandard:
        if not CONTENT_SIZE:
            c = zstandard.ZstdCompressor(level=3, write_content_size=False).compressobj()
            return c.compress(data) + c.flush()
        return zstandard.ZstdCompressor(level=3).compress(data)
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, check=True, stdout=subprocess.PIPE).stdout


def unzstd(data):
    if zstandard:
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return subprocess.run(["zstd", "-q", "-d", "-c"], input=data, check=True, stdout=subprocess.PIPE).stdout


def key(kind, digest):
    h = digest.hex()
    return "%s/b3/%s/%s" % (kind, h[:4], h)


def text(digest):
    return "blake3-" + base64.b64encode(digest).decode()


# ---- the encoder ----


class Layout:
    def __init__(self, out, chunk_size):
        self.out = out
        self.chunk_size = chunk_size
        self.dirs = {}  # digest -> canonical bytes

    def put(self, k, data):
        p = os.path.join(self.out, k)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p + ".tmp", "wb") as f:
            f.write(data)
        os.rename(p + ".tmp", p)

    def blob(self, path):
        """Stores a file's content; returns (digest, size)."""
        with open(path, "rb") as f:
            data = f.read()
        digest = b3_files([path])[0]
        if not data:
            return digest, 0  # the empty blob has no object
        chunks = [data[i:i + self.chunk_size] for i in range(0, len(data), self.chunk_size)]
        cds = b3_many(chunks) if len(chunks) > 1 else [digest]
        for c, d in zip(chunks, cds):
            self.put(key("chunks", d), zstd(c))
        if len(chunks) > 1:
            self.put(key("blobs", digest), blob_index([(d, len(c)) for c, d in zip(chunks, cds)]))
        return digest, len(data)

    def tree(self, path):
        """Encodes a directory; returns (digest, size)."""
        dirs, files, symlinks = [], [], []
        count = 0
        for name in sorted(os.listdir(os.fsencode(path))):
            p = os.path.join(os.fsencode(path), name)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                d, n = self.tree(p)
                dirs.append((name, d, n))
                count += 1 + n
            elif stat.S_ISREG(st.st_mode):
                d, n = self.blob(p)
                files.append((name, d, n, bool(st.st_mode & stat.S_IXUSR)))
                count += 1
            elif stat.S_ISLNK(st.st_mode):
                symlinks.append((name, os.readlink(p)))
                count += 1
            else:
                raise SystemExit("encode-layout: %s: not a file, directory or symlink" % p.decode())
        data = directory(dirs, files, symlinks)
        digest = b3(data)
        self.dirs[digest] = data
        return digest, count

    def closure(self, top):
        """Frames of top's closure: top first, breadth first, each once."""
        order, seen, i = [top], {top}, 0
        while i < len(order):
            for _, d, _ in decode_directory(self.dirs[order[i]])[0]:
                if d not in seen:
                    seen.add(d)
                    order.append(d)
            i += 1
        return frames([self.dirs[d] for d in order])

    def root(self, name, source):
        st = os.lstat(source)
        nm = name.encode()
        if stat.S_ISDIR(st.st_mode):
            d, n = self.tree(source)
            self.put(key("dirs", d), zstd(self.closure(d)))
            return d, node_directory(nm, d, n)
        if stat.S_ISLNK(st.st_mode):
            return None, node_symlink(nm, os.readlink(os.fsencode(source)))
        d, n = self.blob(source)
        return d, node_file(nm, d, n, bool(st.st_mode & stat.S_IXUSR))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunk-size", type=int, default=64 << 10)
    ap.add_argument("--no-content-size", action="store_true",
                    help="zstd frames without the content size (as streamed)")
    ap.add_argument("out")
    ap.add_argument("roots", nargs="+", metavar="NAME=SOURCE")
    a = ap.parse_args()
    global CONTENT_SIZE
    CONTENT_SIZE = not a.no_content_size
    lay = Layout(a.out, a.chunk_size)
    nodes = []
    for r in a.roots:
        name, _, source = r.partition("=")
        digest, node = lay.root(name, source)
        lay.put("roots/" + name, node)
        nodes.append(node)
        if digest:
            print(name, text(digest))
        else:
            print(name, "symlink", os.readlink(source))
    lay.put("roots.index", frames(nodes))


if __name__ == "__main__":
    main()
