# Runs inside the guest (busybox sh), cwd = the virtiofs mount; the same
# script runs on the host over the source tree to make the expected output.
# $1: "guest" or "host".
where=${1:-guest}
if [ "$where" = guest ]; then
        # busybox ls may exit 0 when readdir fails: count what it printed instead
        if [ "$(ls -a . 2>/dev/null | wc -l)" -gt 0 ]; then echo "top: listed"; else echo "top: refused"; fi
        [ -d tree ] && echo "lookup: tree found"
        [ -e no-such-root ] || echo "lookup: no-such-root absent"
        cd tree || exit 1
else
        echo "top: refused"
        echo "lookup: tree found"
        echo "lookup: no-such-root absent"
fi
find . -type f | sort | while read -r f; do sha256sum "$f"; done
find . -type l | sort | while read -r l; do echo "link $l -> $(readlink "$l")"; done
find . -type f | sort | while read -r f; do [ -x "$f" ] && echo "exec $f"; done
find . -type d | sort | while read -r d; do echo "dir $d"; done
if [ "$where" = guest ]; then
        touch newfile 2>&1 | grep -q 'Read-only' && echo "create: EROFS"
        mkdir newdir 2>&1 | grep -q 'Read-only' && echo "mkdir: EROFS"
        rm -f hello.txt 2>&1 | grep -q 'Read-only' && echo "unlink: EROFS"
        (echo x >> hello.txt) 2>&1 | grep -q 'Read-only' && echo "write: EROFS"
        # many readers at once
        for i in 1 2 3 4 5 6; do
                (find . -type f | sort | while read -r f; do sha256sum "$f"; done > /tmp/reader.$i) &
        done
        wait
        ok=yes
        for i in 2 3 4 5 6; do cmp -s /tmp/reader.1 /tmp/reader.$i || ok=no; done
        find . -type f | sort | while read -r f; do sha256sum "$f"; done | cmp -s - /tmp/reader.1 || ok=no
        echo "parallel readers agree: $ok"
else
        echo "create: EROFS"
        echo "mkdir: EROFS"
        echo "unlink: EROFS"
        echo "write: EROFS"
        echo "parallel readers agree: yes"
fi
