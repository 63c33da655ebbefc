#!/usr/bin/env bash
# Generates a tree with every node type and awkward names, for import, mount
# and virtiofs tests: gen-tree.sh DIR (DIR must not exist).
set -euo pipefail
d=$1
mkdir -p "$d"
cd "$d"
mkdir -p 'with space/inner dir' 'ütf-8 ñame ☃' empty-dir deep/a/b/c/d/e/f/g
printf 'hello\n' > hello.txt
printf 'hello\n' > 'with space/same content.txt'        # duplicate content
printf 'hello\n' > deep/a/b/c/d/e/f/g/hello-again
: > empty-file
: > 'with space/inner dir/another empty'
printf '#!/bin/sh\necho run\n' > script.sh
chmod 755 script.sh
printf '#!/bin/sh\necho run\n' > 'ütf-8 ñame ☃/not-executable.sh'   # same bytes, not executable
long=$(printf 'L%.0s' $(seq 1 255))
printf 'a 255-byte name\n' > "$long"
printf 'tab\tand newline\n' > $'name with\ttab'
printf '%s' "-dash" > ./-starts-with-dash
head -c 1100000 /dev/urandom > big.bin                  # about 1 MiB
head -c 70000 /dev/urandom > 'ütf-8 ñame ☃/medium.bin'
ln -s hello.txt rel-link
ln -s ../hello.txt 'with space/up-link'
ln -s /etc/hostname abs-link
ln -s does-not-exist dangling-link
ln -s 'with space' dir-link
ln -s "$(printf 't%.0s' $(seq 1 300))" long-target-link
mkdir -p '.hidden'
printf 'x' > '.hidden/.dotfile'
printf 'x' > 'deep/a/b/same-x'
