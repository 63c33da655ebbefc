#!/usr/bin/env bash
# Installs what casfs needs to build, test and benchmark, from Debian's
# packages, when it is missing. Safe to run again; does nothing when all is there.
set -euo pipefail

build=(meson ninja-build gcc pkg-config libfuse3-dev fuse3 libprotobuf-c-dev protobuf-c-compiler
       liblmdb-dev librust-blake3-dev libcurl4-openssl-dev libssl-dev libzstd-dev scdoc)
test=(protobuf-compiler b3sum rsync python3 attr clang libclang-rt-14-dev valgrind man-db procps util-linux
      ceph-mon ceph-osd radosgw ceph-common nginx-light openssl curl zstd python3-zstandard)
bench=(squashfs-tools squashfuse casync fio time rclone s3fs)
vm=(qemu-system-x86 busybox-static cpio)
deb=(debhelper dpkg-dev)

want=("${build[@]}" "${test[@]}")
case "${1:-}" in
--bench) want+=("${bench[@]}") ;;
--all) want+=("${bench[@]}" "${vm[@]}" "${deb[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
        exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
