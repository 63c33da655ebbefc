#!/usr/bin/env bash
# The Debian package: dpkg-buildpackage on a copy of the source tree builds
# casfs_VERSION_ARCH.deb; it installs (casfs, the manual page, the bash
# completion, /sbin/mount.casfs, the libcurl transport module), mounts
# through 'mount -t casfs' and an fstab line (a daemon without libcurl), finds
# its module for an http:// address, and purges without a trace. Root only
# (it installs).
. "$(dirname "$0")/../lib/lib.sh"
export LC_ALL=C

[ "$(id -u)" -eq 0 ] || { echo "not root: skipping (the package is installed and purged)" >&2; exit 77; }
if dpkg-query -W -f='${Status}' casfs 2>/dev/null | grep -q 'ok installed'; then
        fail "a casfs package is installed already: not replacing it (dpkg --purge casfs first)"
        finish
fi

# the source tree as git knows it (tracked and new files, none ignored), or
# all of it but the build folders when it is no git checkout
src=$TMP/src/casfs
mkdir -p "$src"
if git -C "$SOURCE_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$SOURCE_ROOT" && git ls-files -co --exclude-standard -z |
                        while IFS= read -r -d '' f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done |
                        xargs -0 cp -a --parents -t "$src")
else
        tar -C "$SOURCE_ROOT" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$src" -xf -
fi
check "the copy has debian/" test -x "$src/debian/rules"

(cd "$src" && dpkg-buildpackage -b -us -uc) > "$TMP/build.log" 2>&1
rc=$?
check_eq "dpkg-buildpackage -b -us -uc: exit status" "$rc" 0
[ "$rc" -eq 0 ] || tail -n 40 "$TMP/build.log" >&2
deb=$(ls "$TMP"/src/casfs_*.deb 2>/dev/null | head -n 1)
check "it built casfs_VERSION_ARCH.deb" test -n "$deb"
[ -n "$deb" ] || finish

dpkg-deb -c "$deb" | awk '{print $6}' > "$TMP/contents"
module=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/casfs/objstore-curl.so
for f in ./usr/bin/casfs ./sbin/mount.casfs ./usr/share/man/man1/casfs.1.gz \
        ./usr/share/bash-completion/completions/casfs ./usr/share/doc/casfs/copyright ".$module"; do
        check "the package holds $f" grep -qxF "$f" "$TMP/contents"
done
depends=$(dpkg-deb -f "$deb" Depends)
# libcurl4: the module's (dpkg-shlibdeps reads it too)
for d in fuse3 libfuse3-3 liblmdb0 libprotobuf-c1 libc6 libcurl4; do
        check "it depends on $d" grep -qE "(^|, )$d( |,|$)" <<<"$depends"
done
check_eq "the version is casfs's" "$(dpkg-deb -f "$deb" Version)" "$("$CASFS" --version | cut -d' ' -f2)"

# installed; purged at the end, also when a check fails
export CASFS_STORE=$TMP/store MNT=$TMP/mnt
mkdir -p "$MNT" "$TMP/tree"
echo hello > "$TMP/tree/hello.txt"
installed=
uninstall() {
        local p
        for p in $(pgrep -f -- "casfs.* $MNT( |\$)"); do kill -TERM "$p"; done
        sleep 0.3
        grep -q " $MNT fuse" /proc/mounts && umount -l "$MNT"
        [ -n "$installed" ] && dpkg --purge casfs >/dev/null 2>&1
}
cleanup_hooks+=(uninstall)
dpkg -i "$deb" > "$TMP/install.log" 2>&1
rc=$?
check_eq "dpkg -i: exit status" "$rc" 0
[ "$rc" -eq 0 ] || cat "$TMP/install.log" >&2
installed=1
check_eq "casfs --version" "$(/usr/bin/casfs --version)" "$("$CASFS" --version)"
check_eq "man finds the page" "$(man -w casfs 2>/dev/null)" /usr/share/man/man1/casfs.1.gz
check "which renders" bash -c "man casfs 2>/dev/null | grep -q 'mount.casfs'"
check "the completion is where bash-completion looks" test -f /usr/share/bash-completion/completions/casfs
check "mount(8)'s helper is there" test -x /sbin/mount.casfs
/usr/bin/casfs import --name tree "$TMP/tree" >/dev/null
check_eq "it imports" "$(/usr/bin/casfs roots | cut -f1)" tree
timeout 5 mount -t casfs "$CASFS_STORE" "$MNT" -o list_root,nosuid,nodev
check_eq "mount -t casfs: exit status" "$?" 0
check_eq "the mount serves" "$(cat "$MNT/tree/hello.txt" 2>&1)" hello
check_eq "and lists the top (list_root)" "$(ls "$MNT" 2>&1)" tree
daemon=$(pgrep -f -- "casfs.* $MNT( |\$)" | head -n 1)
check "its daemon runs" test -n "$daemon"
check_eq "its daemon maps no libcurl (the module is for remote stores)" \
        "$(grep -c -E 'libcurl|objstore-curl' "/proc/${daemon:-0}/maps" 2>&1)" 0
umount "$MNT"
check_eq "umount: exit status" "$?" 0
# nothing listens on port 1: the error is the connection's, so the module loaded
/usr/bin/casfs --store http://127.0.0.1:1/x roots 2> "$TMP/err"
check_eq "an http:// store with nothing there: exit status" "$?" 1
check "the installed module is found and loaded" grep -q "Failed to connect" "$TMP/err"
printf '%s %s casfs defaults,uid_gid=1:2 0 0\n' "$CASFS_STORE" "$MNT" > "$TMP/fstab"
timeout 5 mount -a -T "$TMP/fstab"
check_eq "mount -a with an fstab line: exit status" "$?" 0
check_eq "the owner of the fstab line" "$(stat -c %u:%g "$MNT/tree/hello.txt" 2>&1)" 1:2
umount "$MNT"
ok=false
for _ in $(seq 1 50); do pgrep -f -- "casfs.* $MNT( |\$)" >/dev/null || { ok=true; break; }; sleep 0.1; done
check "the daemon ends with the mount" $ok

dpkg --purge casfs > "$TMP/purge.log" 2>&1
check_eq "dpkg --purge: exit status" "$?" 0
installed=
check "casfs is gone" test ! -e /usr/bin/casfs
check "mount.casfs is gone" test ! -e /sbin/mount.casfs -a ! -L /sbin/mount.casfs
check "the manual page is gone" test ! -e /usr/share/man/man1/casfs.1.gz
check "the module is gone" test ! -e "$module"
check "the package is not known any more" bash -c "! dpkg-query -W -f='\${Status}' casfs 2>/dev/null | grep -q installed"
finish
