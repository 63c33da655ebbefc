#!/usr/bin/env python3
"""Computes the castore digest of a tree independently of casfs: the
directory messages are encoded by protoc (--encode, from our .proto) and
hashed by b3sum. Prints one line per directory: 'DIGEST-TEXT<tab>RELPATH'
(the top as '.'), deepest first."""
import base64
import os
import subprocess
import sys


def b3(data=None, path=None):
    if path is not None:
        out = subprocess.run(['b3sum', '--no-names', '--', path], check=True,
                             capture_output=True).stdout
    else:
        out = subprocess.run(['b3sum', '--no-names'], input=data, check=True,
                             capture_output=True).stdout
    return bytes.fromhex(out.decode().strip())


def esc(b):
    return '"' + ''.join('\\%03o' % c for c in b) + '"'


def encode(text, proto_dir):
    return subprocess.run(['protoc', '--proto_path=' + proto_dir,
                           '--encode=tvix.castore.v1.Directory', 'castore.proto'],
                          input=text.encode(), check=True, capture_output=True).stdout


def walk(path, rel, proto_dir, out):
    dirs, files, links = [], [], []
    for name in os.listdir(os.fsencode(path)):
        p = os.path.join(os.fsencode(path), name)
        st = os.lstat(p)
        if os.path.islink(p):
            links.append((name, os.readlink(p)))
        elif os.path.isdir(p):
            digest, size = walk(p, os.path.join(rel, os.fsdecode(name)), proto_dir, out)
            dirs.append((name, digest, size))
        else:
            files.append((name, b3(path=p), st.st_size, bool(st.st_mode & 0o100)))
    text = []
    for name, digest, size in sorted(dirs):
        text.append('directories { name: %s digest: %s size: %d }' % (esc(name), esc(digest), size))
    for name, digest, size, x in sorted(files):
        text.append('files { name: %s digest: %s size: %d executable: %s }'
                    % (esc(name), esc(digest), size, 'true' if x else 'false'))
    for name, target in sorted(links):
        text.append('symlinks { name: %s target: %s }' % (esc(name), esc(target)))
    digest = b3(data=encode('\n'.join(text), proto_dir))
    size = len(dirs) + len(files) + len(links) + sum(s for _, _, s in dirs)
    out.append((rel, 'blake3-' + base64.b64encode(digest).decode()))
    return digest, size


def main():
    tree, proto_dir = sys.argv[1], sys.argv[2]
    out = []
    walk(tree, '.', proto_dir, out)
    for rel, text in out:
        sys.stdout.write('%s\t%s\n' % (text, rel))


main()
