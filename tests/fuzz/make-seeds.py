#!/usr/bin/env python3
"""Writes the seed corpora (corpus/<target>/) committed beside the fuzz
targets: valid inputs of each format and a few broken ones."""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))
EMPTY = bytes.fromhex('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262')


def ld(field, data):
    """A length-delimited protobuf field."""
    out = bytes([field << 3 | 2])
    n = len(data)
    while n >= 0x80:
        out += bytes([n & 0x7f | 0x80])
        n >>= 7
    return out + bytes([n]) + data


def varint(field, v):
    out = bytes([field << 3])
    while v >= 0x80:
        out += bytes([v & 0x7f | 0x80])
        v >>= 7
    return out + bytes([v])


def write(target, name, data):
    d = os.path.join(here, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


keep = ld(2, ld(1, b'.keep') + ld(2, EMPTY))
write('fuzz-directory', 'with-keep', keep)
write('fuzz-directory', 'empty', b'')
dirs = ld(1, ld(1, b'a') + ld(2, EMPTY)) + ld(1, ld(1, b"a'") + ld(2, EMPTY))
write('fuzz-directory', 'two-dirs', dirs)
write('fuzz-directory', 'mixed', ld(1, ld(1, b'd') + ld(2, EMPTY) + varint(3, 1)) +
      ld(2, ld(1, b'f') + ld(2, EMPTY) + varint(3, 5) + varint(4, 1)) + ld(3, ld(1, b'l') + ld(2, b'target')))
write('fuzz-directory', 'unsorted', ld(2, ld(1, b'b') + ld(2, EMPTY)) + ld(2, ld(1, b'a') + ld(2, EMPTY)))
write('fuzz-directory', 'short-digest', ld(2, ld(1, b'a') + ld(2, EMPTY[:31])))
write('fuzz-directory', 'garbage', b'\xff\xff\xff\x0a')

write('fuzz-node', 'directory', ld(1, ld(1, b'root') + ld(2, EMPTY) + varint(3, 3)))
write('fuzz-node', 'file', ld(2, ld(1, b'f') + ld(2, EMPTY) + varint(3, 0) + varint(4, 1)))
write('fuzz-node', 'symlink', ld(3, ld(1, b'l') + ld(2, b'../x')))
write('fuzz-node', 'none', b'')

LIST = (b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>'
        b'<Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>%s'
        b'<Contents><Key>p/chunks/b3/ab12/ab12</Key><LastModified>2024-01-01T00:00:00.000Z'
        b'</LastModified><ETag>&quot;0f&quot;</ETag><Size>10</Size></Contents>'
        b'<Contents><Key>p/roots/a &amp; b&#x20AC;&#233;</Key><Size>0</Size></Contents>'
        b'</ListBucketResult>')
write('fuzz-s3-xml', 'list-last', LIST % b'<IsTruncated>false</IsTruncated>')
write('fuzz-s3-xml', 'list-more', LIST % (b'<IsTruncated>true</IsTruncated>'
                                          b'<NextContinuationToken>MS8yKzM=</NextContinuationToken>'))
write('fuzz-s3-xml', 'error', b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code>'
      b'<BucketName>b</BucketName><RequestId>tx0</RequestId></Error>')
write('fuzz-s3-xml', 'bad-entity', b'<ListBucketResult><Contents><Key>a&#0;&bogus</Key><Size>1</Size>'
      b'</Contents>')


def vu(req, payload=b'', flags=1, fds=0):
    return bytes([fds]) + struct.pack('<III', req, flags, len(payload)) + payload


write('fuzz-vhost-msg', 'get-features', vu(1))
write('fuzz-vhost-msg', 'set-features', vu(2, struct.pack('<Q', 1 << 32)))
write('fuzz-vhost-msg', 'mem-table', vu(5, struct.pack('<II', 1, 0) + struct.pack('<QQQQ', 0, 1 << 20, 0x7f0000000000, 0), fds=1))
write('fuzz-vhost-msg', 'vring-num', vu(8, struct.pack('<II', 1, 1024)))
write('fuzz-vhost-msg', 'vring-addr', vu(9, struct.pack('<IIQQQQ', 1, 0, 0x1000, 0x3000, 0x2000, 0)))
write('fuzz-vhost-msg', 'vring-kick', vu(12, struct.pack('<Q', 1), fds=1))
write('fuzz-vhost-msg', 'bad-size', vu(8, b'\x01'))


def ring(num, descs, avail, flags=0):
    """Guest memory: descriptor table at gpa 0x1000, avail ring after it."""
    mem = bytearray(64 * 1024)
    for i, (addr, length, fl, nxt) in enumerate(descs):
        struct.pack_into('<QIHH', mem, 16 * i, addr, length, fl, nxt)
    base = 16 * 256
    struct.pack_into('<HH', mem, base, flags, len(avail))
    for i, h in enumerate(avail):
        struct.pack_into('<H', mem, base + 4 + 2 * i, h)
    n = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4, 32: 5, 64: 6, 128: 7, 256: 8}[num]
    return bytes([n, 1]) + bytes(mem[:base + 4 + 2 * num + 2])


write('fuzz-virtqueue', 'one-chain', ring(8, [(0x1000 + 8192, 64, 1, 1), (0x1000 + 9000, 128, 2, 0)], [0]))
write('fuzz-virtqueue', 'loop', ring(8, [(0x1000 + 8192, 64, 1, 1), (0x1000 + 9000, 128, 3, 0)], [0]))
write('fuzz-virtqueue', 'indirect', ring(8, [(0x1000 + 8192, 32, 4, 0)], [0]) )
write('fuzz-virtqueue', 'out-of-range', ring(8, [(0xffffffff0000, 64, 0, 0)], [0, 9]))


def fuse(opcode, nodeid, payload=b'', unique=7, shape=0):
    h = struct.pack('<IIQQIIII', 40 + len(payload), opcode, unique, nodeid, 0, 0, 0, 0)
    return bytes([shape]) + h + payload


write('fuzz-fuse-request', 'lookup-tree', fuse(1, 1, b'tree\0'))
write('fuzz-fuse-request', 'getattr-top', fuse(3, 1, struct.pack('<IIQ', 0, 0, 0)))
write('fuzz-fuse-request', 'readdirplus-top', fuse(44, 1, struct.pack('<QQIIQII', 0, 0, 4096, 0, 0, 0, 0)))
write('fuzz-fuse-request', 'read-stale', fuse(15, 12345, struct.pack('<QQIIQII', 0, 0, 4096, 0, 0, 0, 0), shape=0x28))
write('fuzz-fuse-request', 'getxattr', fuse(22, 1, struct.pack('<II', 64, 0) + b'user.castore.directory.digest\0'))
write('fuzz-fuse-request', 'forget', fuse(2, 2, struct.pack('<Q', 5)))
write('fuzz-fuse-request', 'short', b'\x00\x10\x00\x00\x00')
