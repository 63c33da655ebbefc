#!/usr/bin/env bash
# Large blobs carry a BLAKE3 outboard (src/core/outboard.h): a read verifies
# only the 16 KiB groups it touches. Damage in one group fails reads of that
# group alone; a damaged or missing outboard falls back to checking the blob
# whole; fsck reports a damaged outboard; gc removes it with its blob.
. "$(dirname "$0")/lib-mount.sh"
export CASFS_STORE=$TMP/store
export LC_ALL=C
STORE_TOOL=${STORE_TOOL:?}
G=16384

mkdir -p "$TMP/big"
head -c $((5 * 1048576 + 12345)) /dev/urandom > "$TMP/big/large.bin"
head -c $((1048576 + 1)) /dev/urandom > "$TMP/big/just-over.bin"
head -c 1048576 /dev/urandom > "$TMP/big/one-mib.bin"
"$CASFS" import --name big "$TMP/big" >/dev/null || fail "import"

digest_of() { "$CASFS" stat "big/$1" | sed -n 's/^digest: //p'; }
large=$(digest_of large.bin)
path=$("$STORE_TOOL" "$CASFS_STORE" blob-path "$large")
ob=$path.outboard
size=$(stat -c %s "$TMP/big/large.bin")
check "a large blob has an outboard beside it" test -f "$ob"
check_eq "of 32 bytes per 16 KiB group" "$(stat -c %s "$ob")" $(((size + G - 1) / G * 32))
check "a blob just over 1 MiB has one" test -f "$("$STORE_TOOL" "$CASFS_STORE" blob-path "$(digest_of just-over.bin)").outboard"
check "a blob of 1 MiB has none" test ! -e "$("$STORE_TOOL" "$CASFS_STORE" blob-path "$(digest_of one-mib.bin)").outboard"

# read_pages FILE START N: reads every other 4 KiB page from START, N of them, as a
# random reader (the kernel's readahead off); prints the sha256 of what came
read_pages() {
        python3 - "$@" <<'PY'
import errno, hashlib, os, sys
path, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
h = hashlib.sha256()
try:
    for k in range(n):
        h.update(os.pread(fd, 4096, start + 2 * k * 4096))
    print(h.hexdigest())
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}

# cached_pages FILE OFFSET LENGTH: how many of the pages of that range are in
# the file's page cache (mincore of a mapping of it)
cached_pages() {
        python3 - "$@" <<'PY'
import ctypes, os, sys
path, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
fd = os.open(path, os.O_RDONLY)
addr = libc.mmap(None, n, 1, 1, fd, off)  # PROT_READ, MAP_SHARED
vec = (ctypes.c_ubyte * ((n + 4095) // 4096))()
if addr in (None, ctypes.c_void_p(-1).value) or libc.mincore(addr, n, vec) != 0:
    sys.exit("mincore: " + os.strerror(ctypes.get_errno()))
print(sum(v & 1 for v in vec))
PY
}

# read_at FILE OFFSET LENGTH [random]: prints the bytes' sha256 or the
# error's name; random: with the kernel's readahead off (the request is the read)
read_at() {
        python3 - "$@" <<'PY'
import errno, hashlib, os, sys
path, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    fd = os.open(path, os.O_RDONLY)
    if sys.argv[4:] == ["random"]:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    data = os.pread(fd, n, off)
    os.close(fd)
    print(hashlib.sha256(data).hexdigest())
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}

start_mount
check "every file reads right" diff -r "$TMP/big" "$MNT/big"
for off in 0 1 4095 16383 16384 1000000 3145000 $((size - 5000)); do
        check_eq "4 KiB at $off" "$(read_at "$MNT/big/large.bin" $off 4096)" "$(read_at "$TMP/big/large.bin" $off 4096)"
done
stop_mount

# one flipped byte in group 192 (bytes 3145728-3162111)
chmod u+w "$path"
flip() { # flip FILE OFFSET
        local b
        b=$(dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' ')
        printf "\\$(printf '%03o' $(((b ^ 1) & 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# large blobs are read straight from the disk (O_DIRECT), not through their
# own page cache: reading one through the mount leaves none of it cached
# (the kernel caches the file it serves); verified or not
for opt in "" --no-verify; do
        sync; echo 3 > /proc/sys/vm/drop_caches
        start_mount $opt
        check "${opt:-verified}: the large file reads right" cmp "$MNT/big/large.bin" "$TMP/big/large.bin"
        check_eq "${opt:-verified}: and its blob's file stays out of the page cache" \
                "$(fincore -n -b -o RES "$path" | tr -d ' ')" 0
        sync; echo 3 > /proc/sys/vm/drop_caches
        # inside a group: the daemon reads (and, verifying, checks) the whole group
        check_eq "${opt:-verified}: a 4 KiB read inside a group reads right" \
                "$(read_at "$MNT/big/large.bin" 2005000 4096 random)" "$(read_at "$TMP/big/large.bin" 2005000 4096)"
        check_eq "${opt:-verified}: and leaves none of the blob cached either" \
                "$(fincore -n -b -o RES "$path" | tr -d ' ')" 0
        # read around (src/fs/around.h): once most small reads of a file fall in blocks of 256 KiB
        # read before, each block read from is read whole, checked and handed to the file's page
        # cache: every other page of block 1835008-2097151 (the 4 KiB read above is in it)
        check_eq "${opt:-verified}: random reads of every other page of a block read right" \
                "$(read_pages "$MNT/big/large.bin" 1835008 32)" "$(read_pages "$TMP/big/large.bin" 1835008 32)"
        for _ in $(seq 50); do
                [ "$(cached_pages "$MNT/big/large.bin" 1835008 262144)" = 64 ] && break
                sleep 0.1
        done
        check_eq "${opt:-verified}: the whole block is in the mounted file's page cache" \
                "$(cached_pages "$MNT/big/large.bin" 1835008 262144)" 64
        check_eq "${opt:-verified}: and nothing but pages read around it" \
                "$(fincore -n -b -o RES "$MNT/big/large.bin" | tr -d ' ')" 262144
        check_eq "${opt:-verified}: and the pages not read read right from there" \
                "$(read_at "$MNT/big/large.bin" $((1835008 + 4096)) 4096 random) $(read_at "$MNT/big/large.bin" 2093056 4096 random)" \
                "$(read_at "$TMP/big/large.bin" $((1835008 + 4096)) 4096) $(read_at "$TMP/big/large.bin" 2093056 4096)"
        check_eq "${opt:-verified}: still none of it in the blob's own page cache" \
                "$(fincore -n -b -o RES "$path" | tr -d ' ')" 0
        stop_mount
done

flip "$path" $((3 * 1048576 + 100))
start_mount
check_eq "a read of the damaged group is EIO" "$(read_at "$MNT/big/large.bin" $((3 * 1048576)) 4096)" EIO
check_eq "also its last page" "$(read_at "$MNT/big/large.bin" $((3 * 1048576 + G - 4096)) 4096)" EIO
check_eq "the group before reads" "$(read_at "$MNT/big/large.bin" $((3 * 1048576 - G)) $G)" \
        "$(read_at "$TMP/big/large.bin" $((3 * 1048576 - G)) $G)"
check_eq "the group after reads" "$(read_at "$MNT/big/large.bin" $((3 * 1048576 + G)) 4096)" \
        "$(read_at "$TMP/big/large.bin" $((3 * 1048576 + G)) 4096)"
# read around on (random reads of a block), a random read beside the damaged group reads its
# 256 KiB block (bytes 3145728-3407871) around: with a group that does not match, none of it goes
# to the page cache
check_eq "random reads of every other page of a block read right" \
        "$(read_pages "$MNT/big/large.bin" 1048576 32)" "$(read_pages "$TMP/big/large.bin" 1048576 32)"
check_eq "a random read two groups after the damaged one reads" \
        "$(read_at "$MNT/big/large.bin" $((3 * 1048576 + 2 * G)) 4096 random)" \
        "$(read_at "$TMP/big/large.bin" $((3 * 1048576 + 2 * G)) 4096)"
sleep 0.5
check_eq "read around was on: the block read at random is cached whole" \
        "$(cached_pages "$MNT/big/large.bin" 1048576 262144)" 64
n=$(cached_pages "$MNT/big/large.bin" $((3 * 1048576)) 262144)
check "the damaged group's block is not: only pages read from it ($n of 64)" test "$n" -lt 8
check_eq "the damaged group is still EIO after a read beside it in its block" \
        "$(read_at "$MNT/big/large.bin" $((3 * 1048576 + 8192)) 4096 random)" EIO
check_eq "a read at the block's end reads" "$(read_at "$MNT/big/large.bin" $((3 * 1048576 + 262144 - 4096)) 4096 random)" \
        "$(read_at "$TMP/big/large.bin" $((3 * 1048576 + 262144 - 4096)) 4096)"
check_eq "the first MiB reads" "$(read_at "$MNT/big/large.bin" 0 1048576)" "$(read_at "$TMP/big/large.bin" 0 1048576)"
check_eq "reading the whole file fails" "$(errno_of read "$MNT/big/large.bin")" EIO
check "the daemon names the blob and the damaged bytes" \
        grep -q "blob $large: corrupt: bytes 3145728-3162111 do not match" "$TMP/daemon.log"
check "other large files read right" cmp "$MNT/big/just-over.bin" "$TMP/big/just-over.bin"
stop_mount

EXPECT_RC=1 check_fails "fsck reports the damaged blob" "$CASFS" fsck
flip "$path" $((3 * 1048576 + 100))
check "fsck is clean once it is repaired" "$CASFS" fsck

# a damaged outboard: refused against the digest, the blob is checked whole instead
chmod u+w "$ob"
flip "$ob" 200
: > "$TMP/daemon.log"
start_mount
# a large file looked up by name has its outboard loaded (and checked) in
# the background, before its first read
stat "$MNT/big/large.bin" >/dev/null
for _ in $(seq 50); do grep -q "blob $large: its outboard" "$TMP/daemon.log" && break; sleep 0.1; done
check "a damaged outboard is found once the file is looked up, before it is read" \
        grep -q "blob $large: its outboard does not match the digest" "$TMP/daemon.log"
check "a damaged outboard: the file still reads right" cmp "$MNT/big/large.bin" "$TMP/big/large.bin"
check "and the daemon says so" grep -q "blob $large: its outboard does not match the digest" "$TMP/daemon.log"
stop_mount
out=$("$CASFS" fsck 2>&1)
check_eq "fsck reports the damaged outboard (exit 1)" "$?" 1
check "naming it" grep -q "corrupt outboard $large" <<<"$out"

# damaged outboard and damaged blob: the whole-blob check catches it
flip "$path" 17
start_mount
check_eq "damaged blob and outboard: EIO" "$(read_at "$MNT/big/large.bin" $((4 * 1048576)) 4096)" EIO
stop_mount
flip "$path" 17

# no outboard at all (a store written before outboards): checked whole, reads right
rm -f "$ob"
start_mount
check "no outboard: the file reads right" cmp "$MNT/big/large.bin" "$TMP/big/large.bin"
check_eq "and a random read too" "$(read_at "$MNT/big/large.bin" 2000000 4096)" "$(read_at "$TMP/big/large.bin" 2000000 4096)"
stop_mount
check "fsck does not count a missing outboard as damage" "$CASFS" fsck
"$CASFS" import --name big "$TMP/big" --no-cache >/dev/null
check "importing the content again writes the outboard back" test -f "$ob"
# the same through the stat cache: a file it knows unchanged is read again
# when its blob has no outboard (the cache only trusts files older than 2 s)
age=$(( $(date +%s) - $(stat -c %Z "$TMP/big/large.bin") ))
(( age >= 3 )) || sleep $((3 - age))
"$CASFS" import --name big "$TMP/big" >/dev/null
rm -f "$ob"
"$CASFS" import --name big "$TMP/big" >/dev/null
check "an import through the stat cache writes a missing outboard back" test -f "$ob"

# A reader moving forward through a large file is read ahead of (src/fs/stream.h):
# chunks after its request are read and checked before it asks for them. A
# damaged chunk read ahead is never served: the sequential reader gets every
# byte before the damaged group right, then EIO; reads past it still work.
# seq_read FILE: reads FILE in 1 MiB reads from its start; prints the sha256
# of what came and where it stopped ("OK" at the end, else the error's name)
seq_read() {
        python3 - "$1" <<'PY'
import errno, hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
h, off, end = hashlib.sha256(), 0, "OK"
while True:
    try:
        b = os.pread(fd, 1 << 20, off)
    except OSError as e:
        end = errno.errorcode[e.errno]
        break
    if not b:
        break
    h.update(b)
    off += len(b)
print(h.hexdigest(), off, end)
PY
}
head -c $((40 * 1048576 + 777)) /dev/urandom > "$TMP/long.bin"
mkdir -p "$TMP/long"
cp "$TMP/long.bin" "$TMP/long/long.bin"
# more readers than streams (src/fs/stream.h): streams taken over while read
for k in 1 2 3 4 5 6; do head -c $((6 * 1048576 + k * 1000)) /dev/urandom > "$TMP/long/f$k.bin"; done
"$CASFS" import --name long "$TMP/long" >/dev/null
start_mount
pids=()
for k in 1 2 3 4 5 6; do cmp "$MNT/long/f$k.bin" "$TMP/long/f$k.bin" & pids+=($!); done
cmp "$MNT/long/long.bin" "$TMP/long.bin" & pids+=($!)
# a reader going back and forth in large steps
( for off in 30 2 20 10 35 0; do
        dd if="$MNT/long/long.bin" bs=1M skip=$off count=3 status=none | cmp - <(dd if="$TMP/long.bin" bs=1M skip=$off count=3 status=none) || exit 1
  done ) & pids+=($!)
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
check_eq "eight readers at once, more than there are streams, read right" "$fails" 0
stop_mount
rm -f "$TMP"/long/f?.bin
lpath=$("$STORE_TOOL" "$CASFS_STORE" blob-path "$("$CASFS" stat long/long.bin | sed -n 's/^digest: //p')")
for opt in "" --no-verify; do
        start_mount $opt
        check "${opt:-verified}: a long file read ahead of reads right" cmp "$MNT/long/long.bin" "$TMP/long.bin"
        check "${opt:-verified}: and again" cmp "$MNT/long/long.bin" "$TMP/long.bin"
        stop_mount
done
bad=$((23 * 1048576 + 5000)) # group 1472, in chunk 23
chmod u+w "$lpath"
flip "$lpath" $bad
: > "$TMP/daemon.log"
start_mount
good=$(head -c $((23 * 1048576)) "$TMP/long.bin" | sha256sum | cut -d' ' -f1)
check_eq "a damaged chunk read ahead: the reader gets the bytes before it, then EIO" \
        "$(seq_read "$MNT/long/long.bin")" "$good $((23 * 1048576)) EIO"
check "the daemon names the damaged bytes" \
        grep -q "corrupt: bytes $((bad / G * G))-$((bad / G * G + G - 1)) do not match" "$TMP/daemon.log"
check_eq "the rest of the file reads" "$(read_at "$MNT/long/long.bin" $((30 * 1048576)) 1048576)" \
        "$(read_at "$TMP/long.bin" $((30 * 1048576)) 1048576)"
check_eq "the damaged group is still EIO" "$(read_at "$MNT/long/long.bin" $((bad / G * G)) 4096)" EIO
stop_mount
flip "$lpath" $bad
"$CASFS" rm long

# --passthrough: the kernel reads checked small blobs itself; a damaged one still reads as EIO
head -c 50000 /dev/urandom > "$TMP/big/small.bin"
head -c 60000 /dev/urandom > "$TMP/big/damaged.bin"
"$CASFS" import --name big "$TMP/big" >/dev/null
dpath=$("$STORE_TOOL" "$CASFS_STORE" blob-path "$(digest_of damaged.bin)")
chmod u+w "$dpath"
flip "$dpath" 30000
start_mount --passthrough
check_eq "--passthrough: a damaged small blob reads as EIO" "$(errno_of read "$MNT/big/damaged.bin")" EIO
rm "$TMP/big/damaged.bin"
check "--passthrough: every other file reads right" diff -r -x damaged.bin "$TMP/big" "$MNT/big"
check "and twice" cmp "$MNT/big/small.bin" "$TMP/big/small.bin"
stop_mount

# gc removes an outboard with its blob
"$CASFS" rm big
"$CASFS" gc >/dev/null
check "gc removed the blob" test ! -e "$path"
check "and its outboard" test ! -e "$ob"
finish
