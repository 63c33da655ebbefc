#!/usr/bin/env bash
# Boots a small Linux guest in QEMU against a running virtiofs back-end and
# runs a shell script in it: the guest's kernel is Debian's (fetched once with
# apt-get download into a cache folder, never installed), its userland a
# static busybox in an initramfs. The guest loads the virtiofs module, mounts
# the tag, runs the script (busybox sh, in the mount's top folder) and powers
# off. The script's standard output comes back on a serial port of its own.
#
#   guest.sh --socket PATH (--script FILE | --cmd TEXT) [--out FILE]
#            [--tag TAG] [--queues N] [--smp N] [--mem SIZE] [--timeout SECONDS]
#            [--cache DIR] [--ignore-status]
#
# Prints the script's output (or writes it to --out) and exits with the
# script's exit status; 1 with the reason on stderr when the guest did not
# get that far (QEMU failed, no mount, a hang until --timeout). KVM is used
# when a guest boots with it (CASFS_GUEST_ACCEL=tcg forces emulation).
# Needs qemu-system-x86, busybox-static and cpio (scripts/install-deps.sh --all).
set -uo pipefail
export LC_ALL=C

socket= script= cmd= out= tag=casfs queues=1 smp=1 mem=512M timeout=300 ignore_status=false
cache=${CASFS_GUEST_CACHE:-/var/tmp/casfs-guest}
kernel_pkg=${CASFS_GUEST_KERNEL:-linux-image-cloud-amd64}

die() {
        echo "guest: $*" >&2
        exit 1
}

while [ $# -gt 0 ]; do
        case $1 in
        --socket) socket=$2; shift 2 ;;
        --script) script=$2; shift 2 ;;
        --cmd) cmd=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --queues) queues=$2; shift 2 ;;
        --smp) smp=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --cache) cache=$2; shift 2 ;;
        --ignore-status) ignore_status=true; shift ;;
        -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
        *) die "unknown option $1" ;;
        esac
done
[ -n "$socket" ] || die "--socket PATH is required"
[ -n "$script" ] || [ -n "$cmd" ] || die "--script FILE or --cmd TEXT is required"
case $socket in *,*) die "QEMU cannot take a socket path with a comma: $socket" ;; esac
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (scripts/install-deps.sh --all)"
command -v cpio >/dev/null || die "cpio missing (scripts/install-deps.sh --all)"
busybox=
for b in /bin/busybox /usr/bin/busybox; do
        # the guest has no libraries: only a static busybox will do
        if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
[ -n "$busybox" ] || die "no static busybox (apt-get install busybox-static)"

mkdir -p "$cache" || die "cannot create $cache"
cache=$(cd "$cache" && pwd -P)

# ---- the kernel and its modules: Debian's package, unpacked into the cache
# once (the meta package names the versioned one, fetched by that name)
kdir=$cache/$kernel_pkg
if [ ! -e "$kdir/unpacked" ]; then
        versioned() {
                apt-cache depends "$kernel_pkg" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)/\1/p' | head -n 1
        }
        real=$(versioned)
        if [ -z "$real" ] && [ "$(id -u)" -eq 0 ]; then
                apt-get update -qq >/dev/null 2>&1 # a new machine may have no package lists yet
                real=$(versioned)
        fi
        [ -n "$real" ] || real=$kernel_pkg
        echo "guest: fetching $real into $kdir (once)" >&2
        rm -rf "$kdir"
        mkdir -p "$kdir/deb" "$kdir/root"
        if ! (cd "$kdir/deb" && timeout 900 apt-get download "$real") > "$kdir/fetch.log" 2>&1; then
                cat "$kdir/fetch.log" >&2
                die "apt-get download $real failed"
        fi
        dpkg-deb -x "$kdir"/deb/*.deb "$kdir/root" || die "cannot unpack $real"
        rm -rf "$kdir/deb"
        touch "$kdir/unpacked"
fi
vmlinuz=$(ls "$kdir"/root/boot/vmlinuz-* 2>/dev/null | head -n 1)
moddir=$(ls -d "$kdir"/root/lib/modules/* "$kdir"/root/usr/lib/modules/* 2>/dev/null | head -n 1)
[ -n "$vmlinuz" ] && [ -n "$moddir" ] || die "no kernel or no modules in $kdir"

# the module of a name, whatever its compression
module_file() {
        find "$moddir" -type f \( -name "$1.ko" -o -name "$1.ko.*" -o -name "${1//_/-}.ko" -o -name "${1//_/-}.ko.*" \) | head -n 1
}
module_bytes() {
        case $1 in
        *.xz) xz -dc "$1" ;;
        *.zst) zstd -qdc "$1" ;;
        *.gz) gzip -dc "$1" ;;
        *) cat "$1" ;;
        esac
}
# the modules virtiofs needs, each after those it depends on (read from the
# module's own .modinfo strings); the ones built into the kernel are skipped
order=()
add_module() {
        local name=$1 f dep
        case " ${order[*]} " in *" $name "*) return 0 ;; esac
        grep -qE "/${name//_/[-_]}\.ko$" "$moddir/modules.builtin" 2>/dev/null && return 0
        f=$(module_file "$name")
        if [ -z "$f" ]; then
                [ "$2" = optional ] && return 0
                die "module $name is neither built in nor in $moddir"
        fi
        for dep in $(module_bytes "$f" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '); do
                add_module "$dep" required
        done
        order+=("$name")
}
add_module virtio_pci optional
add_module virtiofs required

# ---- the initramfs: busybox, the modules, /init; the script and its
# settings are appended per run as a second archive
work=$(mktemp -d "${TMPDIR:-/tmp}/casfs-guest.XXXXXX") || die "mktemp failed"
qemu_pid=
cleanup() {
        [ -n "$qemu_pid" ] && kill -KILL "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
        rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

base=$work/base
mkdir -p "$base/bin" "$base/lib/modules" "$base/proc" "$base/sys" "$base/dev" "$base/mnt" "$base/tmp" "$base/etc"
cp "$busybox" "$base/bin/busybox"
for m in "${order[@]}"; do
        module_bytes "$(module_file "$m")" > "$base/lib/modules/$m.ko" || die "cannot unpack module $m"
done
printf '%s\n' "${order[@]}" > "$base/etc/modules"
cat > "$base/init" <<'INIT'
#!/bin/busybox sh
# PID 1 of the guest: modules, the virtiofs mount, the script, power off.
# The console (ttyS0) gets the kernel's lines and a last line with the
# script's exit status; ttyS1 gets the script's standard output, raw.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
. /etc/run.conf
say() { echo "casfs-guest: $*"; }
if [ "${PROBE:-}" = 1 ]; then
        say "booted"
        poweroff -f
fi
for m in $(cat /etc/modules); do
        insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done
stty -F /dev/ttyS1 raw -echo 2>/dev/null
n=0
until mount -t virtiofs "$TAG" /mnt 2>/tmp/mount.err; do
        n=$((n + 1))
        if [ $n -ge 20 ]; then
                say "no mount: $(cat /tmp/mount.err)"
                poweroff -f
        fi
        sleep 0.25
done
say "mounted"
(cd /mnt && sh /etc/script.sh) >/dev/ttyS1
rc=$?
cd /
umount /mnt || say "umount failed"
say "exit $rc"
poweroff -f
INIT
chmod 755 "$base/init"
(cd "$base" && find . | sort | cpio -o -H newc -R 0:0 --quiet) > "$work/base.cpio" || die "cpio failed"

run=$work/run
mkdir -p "$run/etc"
printf 'TAG=%q\n' "$tag" > "$run/etc/run.conf"
if [ -n "$script" ]; then cp "$script" "$run/etc/script.sh"; else printf '%s\n' "$cmd" > "$run/etc/script.sh"; fi
(cd "$run" && find . | sort | cpio -o -H newc -R 0:0 --quiet) > "$work/run.cpio" || die "cpio failed"
cat "$work/base.cpio" "$work/run.cpio" > "$work/initrd"

# ---- the accelerator: KVM when a guest really boots with it (on some hosts
# /dev/kvm opens but QEMU aborts or the guest hangs), with the CPU model that
# works; else TCG. The verdict is kept in the cache, per host kernel and QEMU.
qemu_common=(-machine q35 -nodefaults -no-user-config -display none -no-reboot)
accel_file=$cache/accel-$( { uname -r; qemu-system-x86_64 --version | head -n 1; } | sha256sum | cut -c1-12)
if [ "${CASFS_GUEST_ACCEL:-}" = tcg ]; then
        accel="tcg max"
elif [ -s "$accel_file" ]; then
        accel=$(cat "$accel_file")
else
        accel="tcg max"
        if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
                mkdir -p "$work/probe/etc"
                echo PROBE=1 > "$work/probe/etc/run.conf"
                (cd "$work/probe" && find . | sort | cpio -o -H newc -R 0:0 --quiet) | cat "$work/base.cpio" - > "$work/probe.cpio"
                for cpu in host max; do
                        rm -f "$work/probe.console"
                        # (QEMU may abort here: its death is the answer, not news)
                        { timeout -k 2 60 qemu-system-x86_64 "${qemu_common[@]}" -accel kvm -cpu "$cpu" -m 256M \
                                -serial "file:$work/probe.console" -kernel "$vmlinuz" -initrd "$work/probe.cpio" \
                                -append "console=ttyS0 panic=-1 quiet rdinit=/init" </dev/null >/dev/null 2>&1; } 2>/dev/null
                        if grep -q "casfs-guest: booted" "$work/probe.console" 2>/dev/null; then
                                accel="kvm $cpu"
                                break
                        fi
                done
        fi
        echo "$accel" > "$accel_file"
fi
read -r accel_name cpu_model <<<"$accel"

# ---- QEMU: the guest's memory is a shared memfd, as vhost-user needs
[ -S "$socket" ] || die "$socket: no socket there (start the back-end first)"
: > "$work/console" > "$work/output"
timeout -k 5 "$timeout" qemu-system-x86_64 \
        "${qemu_common[@]}" -accel "$accel_name" -cpu "$cpu_model" -smp "$smp" -m "$mem" \
        -object "memory-backend-memfd,id=mem,size=$mem,share=on" -numa node,memdev=mem \
        -serial "file:$work/console" -serial "file:$work/output" \
        -kernel "$vmlinuz" -initrd "$work/initrd" \
        -append "console=ttyS0 panic=-1 quiet rdinit=/init" \
        -chardev "socket,id=vfs,path=$socket" \
        -device "vhost-user-fs-pci,chardev=vfs,tag=$tag,num-request-queues=$queues,queue-size=1024" \
        </dev/null > "$work/qemu.log" 2>&1 &
qemu_pid=$!
wait "$qemu_pid"
qemu_rc=$?
qemu_pid=

if [ -n "$out" ]; then cp "$work/output" "$out"; else cat "$work/output"; fi
status=$(tr -d '\r' < "$work/console" | sed -n 's/^casfs-guest: exit \([0-9]*\)$/\1/p' | tail -n 1)
reason=
if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
        reason="the guest did not finish within ${timeout}s"
elif [ "$qemu_rc" -ne 0 ]; then
        reason="QEMU failed (exit status $qemu_rc)"
elif [ -z "$status" ]; then
        reason="the guest ended before the script did"
fi
if [ -n "$reason" ]; then
        echo "guest: $reason" >&2
        if [ "${CASFS_GUEST_QUIET:-}" != 1 ]; then
                echo "--- QEMU ---" >&2; cat "$work/qemu.log" >&2
                echo "--- console (last 30 lines) ---" >&2; tr -d '\r' < "$work/console" | tail -n 30 >&2
        fi
        exit 1
fi
grep -q "umount failed" "$work/console" && echo "guest: the guest could not unmount" >&2 && exit 1
$ignore_status && exit 0
exit "$status"
