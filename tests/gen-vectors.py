#!/usr/bin/env python3
"""Turns the conformance vectors (tests/vectors/castore.json) into a C header, so that
the unit tests check against the reference values themselves, not copies."""
import json
import sys


def c_str(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        v = json.load(f)
    out = ['/* generated from castore.json by gen-vectors.py */', '#pragma once', '']
    out.append('typedef struct { const char *name, *contents_hex, *contents_rule, *hex, *text; } vector_blob;')
    out.append('typedef struct { const char *name; unsigned long long size; const char *encoded_hex, *hex, *text; } vector_dir;')
    out.append('static const vector_blob vector_blobs[] = {')
    for b in v['blobs']:
        contents = b.get('contents_hex')
        if contents is None and 'contents_ascii' in b:
            contents = b['contents_ascii'].encode().hex()
        fields = [c_str(b['name']), c_str(contents) if contents is not None else 'NULL',
                  c_str(b.get('contents_rule', '')), c_str(b['hex']),
                  c_str(b['text']) if 'text' in b else 'NULL']
        out.append('        {' + ', '.join(fields) + '},')
    out.append('};')
    out.append('static const vector_dir vector_dirs[] = {')
    for d in v['directories']:
        fields = [c_str(d['name']), str(d['size']) + 'ULL',
                  c_str(d['encoded_hex']) if 'encoded_hex' in d else 'NULL',
                  c_str(d['hex']), c_str(d['text']) if 'text' in d else 'NULL']
        out.append('        {' + ', '.join(fields) + '},')
    out.append('};')
    out.append('static const char *const vector_must_fail[] = {')
    for m in v['must_fail']:
        out.append('        ' + c_str(m) + ',')
    out.append('};')
    with open(dst, 'w') as f:
        f.write('\n'.join(out) + '\n')


main()
