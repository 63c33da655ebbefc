#!/usr/bin/env bash
# The README's first command: installs what casfs needs, builds it, imports
# /usr/share/doc into the default store and mounts the store at /mnt/casfs
# (or at the folder given), then shows a bit of it. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
mnt=${1:-/mnt/casfs}

bash scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
casfs=build/src/cli/casfs

"$casfs" import /usr/share/doc
"$casfs" roots
mkdir -p "$mnt"
if grep -q " $mnt fuse" /proc/mounts; then
        fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
fi
"$casfs" mount "$mnt"
echo "mounted at $mnt (unmount with: fusermount3 -u $mnt)"
ls "$mnt/doc" | head -n 5 || true
du -sh --apparent-size "$mnt/doc"
