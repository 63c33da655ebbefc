#!/usr/bin/env python3
"""Checks a remote-store layout folder (SPEC.md §7, as a file:// store holds
it) with the codec of encode-layout.py, apart from casfs's own reader:

    check-layout.py [--objects] DIR

For every roots/<name>: the Node names <name>; a directory's dirs object
exists and is a zstd stream of frames, top first, each frame's digest the
top's or named by an earlier frame, each once, canonical (it re-encodes to the
same bytes: sorted names, defaults omitted), sizes right; every file it
reaches (and a file root) has its content: one chunk named by the blob's
digest, or a blob index whose chunks exist and whose sizes add up. With
--objects, every chunk object is also decompressed and hashed against its
name. Prints one line per problem and 'N roots, N problems'; exit 1 if any.
"""
import argparse
import importlib.util
import os
import sys

spec = importlib.util.spec_from_file_location(
    "encode_layout", os.path.join(os.path.dirname(os.path.abspath(__file__)), "encode-layout.py"))
L = importlib.util.module_from_spec(spec)
spec.loader.exec_module(L)

problems = []


def problem(msg):
    problems.append(msg)
    print(msg)


def exists(top, k):
    return os.path.isfile(os.path.join(top, k))


def check_blob(top, digest, size, where):
    if size == 0:
        return
    if exists(top, L.key("blobs", digest)):
        with open(os.path.join(top, L.key("blobs", digest)), "rb") as f:
            chunks = L.decode_blob_index(f.read())
        if sum(n for _, n in chunks) != size:
            problem("blob %s (%s): chunk sizes add up to %d, not %d" % (digest.hex(), where, sum(n for _, n in chunks), size))
        for d, _ in chunks:
            if not exists(top, L.key("chunks", d)):
                problem("missing chunk %s of blob %s (%s)" % (d.hex(), digest.hex(), where))
    elif not exists(top, L.key("chunks", digest)):
        problem("missing blob %s (%s)" % (digest.hex(), where))


def check_dirs(top, digest, name):
    k = L.key("dirs", digest)
    if not exists(top, k):
        problem("missing directory object %s (root %s)" % (k, name))
        return
    try:
        with open(os.path.join(top, k), "rb") as f:
            frames = L.unframe(L.unzstd(f.read()))
    except Exception as e:
        problem("directory object %s: does not decode (%s)" % (k, e))
        return None
    named, seen = {digest}, {}
    digests = L.b3_many(frames)
    for fr, d in zip(frames, digests):
        if d not in named:
            problem("directory object %s: frame %s named by no earlier frame" % (k, d.hex()))
            continue
        if d in seen:
            problem("directory object %s: frame %s twice" % (k, d.hex()))
            continue
        dirs, files, symlinks = L.decode_directory(fr)
        if L.directory(dirs, files, symlinks) != fr:
            problem("directory object %s: frame %s not canonical" % (k, d.hex()))
        names = [e[0] for e in dirs + files + symlinks]
        if len(set(names)) != len(names):
            problem("directory %s: a name twice" % d.hex())
        seen[d] = (dirs, files)
        named.update(c for _, c, _ in dirs)
        for fname, fd, fsize, _ in files:
            check_blob(top, fd, fsize, "%s in root %s" % (fname.decode(errors="replace"), name))

    for d, (dirs, _) in seen.items():
        for cname, c, csize in dirs:
            if c not in seen:
                problem("directory %s: child %s (%s) missing from %s" % (d.hex(), c.hex(), cname.decode(errors="replace"), k))
    # sizes: entries below, recursively
    memo = {}

    def count(d, raw):
        if d in memo:
            return memo[d]
        dirs, files, symlinks = L.decode_directory(raw[d])
        n = len(dirs) + len(files) + len(symlinks)
        for _, c, csize in dirs:
            if c in raw:
                n += count(c, raw)
        memo[d] = n
        return n

    raw = {d: fr for fr, d in zip(frames, digests)}
    for d in seen:
        for cname, c, csize in L.decode_directory(raw[d])[0]:
            if c in raw and count(c, raw) != csize:
                problem("directory %s: size of %s is %d, not %d" % (d.hex(), cname.decode(errors="replace"), csize, count(c, raw)))
    return count(digest, raw) if digest in raw else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", action="store_true")
    ap.add_argument("dir")
    a = ap.parse_args()
    top = a.dir
    roots = sorted(os.listdir(os.path.join(top, "roots"))) if os.path.isdir(os.path.join(top, "roots")) else []
    for name in roots:
        with open(os.path.join(top, "roots", name), "rb") as f:
            node = L.parse_fields(f.read())
        if len(node) != 1:
            problem("root %s: not one node" % name)
            continue
        kind, _, v = node[0]
        fields = {n: x for n, _, x in L.parse_fields(v)}
        if fields.get(1, b"") != name.encode():
            problem("root %s: names %r" % (name, fields.get(1, b"")))
        if kind == 1:
            n = check_dirs(top, fields.get(2, b""), name)
            if n is not None and n != fields.get(3, 0):
                problem("root %s: size %d, the closure has %d entries" % (name, fields.get(3, 0), n))
        elif kind == 2:
            check_blob(top, fields.get(2, b""), fields.get(3, 0), "root %s" % name)
    if a.objects:
        for sub in ("chunks", "blobs", "dirs"):
            for dirpath, _, files in os.walk(os.path.join(top, sub)):
                for fn in files:
                    rel = os.path.relpath(os.path.join(dirpath, fn), top)
                    parts = rel.split(os.sep)
                    if len(parts) != 4 or parts[1] != "b3" or len(fn) != 64 or parts[2] != fn[:4]:
                        problem("stray object %s" % rel)
        paths, names = [], []
        for dirpath, _, files in os.walk(os.path.join(top, "chunks")):
            for fn in files:
                with open(os.path.join(dirpath, fn), "rb") as f:
                    try:
                        paths.append(L.unzstd(f.read()))
                        names.append(fn)
                    except Exception:
                        problem("chunk %s: not zstd" % fn)
        for fn, d in zip(names, L.b3_many(paths)):
            if d.hex() != fn:
                problem("chunk %s: its bytes hash to %s" % (fn, d.hex()))
    print("%d roots, %d problems" % (len(roots), len(problems)))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
