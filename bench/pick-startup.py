#!/usr/bin/env python3
"""Picks what bench-remote.sh's start-up rows load, from a local copy of the corpus.

    pick-startup.py headers INCLUDE_DIR N    # N headers that compile together
    pick-startup.py modules PYTHON_DIR N     # N stdlib modules that import from there

headers: N headers of INCLUDE_DIR (with INCLUDE_DIR/<multiarch> beside it),
one per line, that compile together in one C file with
`cc -nostdinc -isystem GCC_INCLUDE -isystem INCLUDE_DIR/<multiarch> -isystem
INCLUDE_DIR`, none of which includes (directly or not, as far as its
#include lines tell) a symlink or a file outside INCLUDE_DIR: systems that
publish plain objects leave symlinks out. Candidates are taken in a fixed
order (top-level headers, then sys/, then the other folders); they are added
20 at a time, a batch that fails one by one.

modules: N modules, one per line, that `python3 -S` imports from PYTHON_DIR
(given as PYTHONPATH), each loaded from there. Prints fewer when fewer fit
(the caller says so).
"""
import os
import re
import subprocess
import sys
import tempfile

CC = os.environ.get("CC", "cc")
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")

MODULES = """json email.parser email.mime.multipart http.client xml.dom.minidom xml.etree.ElementTree
urllib.request urllib.parse argparse logging.handlers subprocess tempfile shutil pathlib typing
dataclasses enum functools collections csv configparser datetime fractions statistics random textwrap
string difflib pprint inspect ast dis tokenize traceback unittest unittest.mock zipfile tarfile gzip
base64 hashlib hmac secrets uuid ipaddress socket selectors asyncio concurrent.futures queue threading
html.parser mimetypes calendar locale gettext glob fnmatch shlex optparse getopt plistlib pickle copy
heapq bisect contextlib weakref numbers sched struct codecs wave colorsys quopri imaplib smtplib
poplib ftplib xmlrpc.client zoneinfo tomllib doctest trace pstats timeit platform sysconfig getpass
netrc""".split()


def multiarch():
    out = subprocess.run([CC, "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    return out or "x86_64-linux-gnu"


def gcc_include():
    return subprocess.run([CC, "-print-file-name=include"], capture_output=True, text=True).stdout.strip()


INCLUDE_RE = re.compile(rb'^\s*#\s*include(?:_next)?\s*[<"]([^>"]+)[>"]', re.M)


def headers(inc, n):
    inc = os.path.abspath(inc)
    dirs = [os.path.join(inc, multiarch()), inc]
    gcc = gcc_include()

    def resolve(name, here):
        for d in [here] + dirs:
            p = os.path.join(d, name)
            if os.path.lexists(p):
                return p
        return None  # gcc's own, or missing: the compile decides

    bad = {}

    def tainted(path, stack=()):
        """True when path is, or includes, a symlink (or leaves inc)."""
        if path in bad:
            return bad[path]
        if os.path.realpath(path) != os.path.abspath(path) or not path.startswith(inc + "/"):
            bad[path] = True
            return True
        if path in stack:
            return False
        bad[path] = False
        try:
            text = open(path, "rb").read()
        except OSError:
            bad[path] = True
            return True
        for m in INCLUDE_RE.finditer(text):
            p = resolve(m.group(1).decode(errors="replace"), os.path.dirname(path))
            if p is not None and tainted(p, stack + (path,)):
                bad[path] = True
                return True
        return False

    def group(rel):
        top = rel.split("/")[0]
        if "/" not in rel:
            return (0, rel)
        if top == "sys":
            return (1, rel)
        return (2, rel)

    cands = []
    for d, subdirs, names in os.walk(inc):
        subdirs[:] = sorted(s for s in subdirs
                            if not os.path.islink(os.path.join(d, s)) and s not in ("c++", "clang", "llvm"))
        for nm in names:
            p = os.path.join(d, nm)
            if nm.endswith(".h") and not os.path.islink(p):
                rel = os.path.relpath(p, inc)
                if rel.startswith(multiarch() + "/"):
                    rel = rel[len(multiarch()) + 1:]
                    if os.path.lexists(os.path.join(inc, rel)):
                        continue
                cands.append(rel)
    cands = sorted(set(cands), key=group)

    tmp = tempfile.mkdtemp()
    src = os.path.join(tmp, "t.c")

    def ok(hs):
        with open(src, "w") as f:
            f.writelines(f"#include <{h}>\n" for h in hs)
            f.write("int main(void) { return 0; }\n")
        r = subprocess.run([CC, "-fsyntax-only", "-nostdinc", "-isystem", gcc, "-isystem", dirs[0],
                            "-isystem", dirs[1], src], capture_output=True)
        return r.returncode == 0

    chosen = []
    i = 0
    while len(chosen) < n and i < len(cands):
        batch = []
        while len(batch) < 20 and i < len(cands):
            rel = cands[i]
            i += 1
            p = resolve(rel, inc)
            if p is not None and not tainted(p):
                batch.append(rel)
        batch = batch[: n - len(chosen)]
        if ok(chosen + batch):
            chosen += batch
        else:
            for h in batch:
                if ok(chosen + [h]):
                    chosen.append(h)
    os.unlink(src)
    os.rmdir(tmp)
    print("\n".join(chosen))


def modules(pydir, n):
    pydir = os.path.abspath(pydir)
    env = dict(os.environ, PYTHONPATH=pydir, PYTHONDONTWRITEBYTECODE="1")
    chosen = []
    for m in MODULES:
        if len(chosen) >= n:
            break
        code = (f"import sys, {m}; f = getattr(sys.modules[{m!r}], '__file__', None) or ''; "
                f"sys.exit(0 if f.startswith({pydir + '/'!r}) else 1)")
        r = subprocess.run([PYTHON, "-S", "-c", code], env=env, capture_output=True)
        if r.returncode == 0:
            chosen.append(m)
    print("\n".join(chosen))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("headers", "modules"):
        sys.exit(__doc__)
    (headers if sys.argv[1] == "headers" else modules)(sys.argv[2], int(sys.argv[3]))
