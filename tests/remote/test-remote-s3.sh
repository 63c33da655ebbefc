#!/usr/bin/env bash
# A real S3 server (Ceph RGW, tests/lib/rgw.sh), started once for every case:
# import, copy to s3:// and back to a fresh local store (same digests, fsck
# clean, same bytes); a second copy sends nothing; reading straight from
# s3://; import straight to s3://; a copy killed (SIGKILL) at random moments,
# then finished: every root present is complete at every moment, and nothing
# complete is sent twice; wrong credentials, a missing bucket, an unreachable
# endpoint: one line each, exit 1, never the secret key.
. "$(dirname "$0")/../lib/lib.sh"
. "$SOURCE_ROOT/tests/remote/lib-remote.sh"
. "$SOURCE_ROOT/tests/lib/rgw.sh"

rgw_start "$TMP/rgw" $((768 << 20)) || { fail "the RGW does not start"; finish; exit 1; }
SECRET=$AWS_SECRET_ACCESS_KEY
for b in bkt kill prefixed direct; do
        rgw_s3 PUT "/$b" || fail "cannot make bucket $b"
done

source_store

# ---- copy to s3 and back ----
casfs_ok "copy to s3" copy "$A" s3://bkt
check_eq "copy to s3 prints NAME DIGEST per root" "$(sort "$TMP/out")" "$want"
casfs_ok "roots of s3://bkt" --store s3://bkt roots
check_eq "s3://bkt has the roots of the local store" "$(sort "$TMP/out")" "$(local_roots "$A" | sort)"
check "every key in the layout's form" python3 -c '
import re, sys
bad = [l for l in sys.stdin.read().split("\n") if l and not re.fullmatch(
    r"\d+ ((chunks|blobs|dirs)/b3/([0-9a-f]{4})/\3[0-9a-f]{60}|roots/[^/]+|roots\.index)", l)]
print("\n".join(bad[:5]), file=sys.stderr)
sys.exit(1 if bad else 0)' <<<"$(rgw_list bkt)"
check_eq "the empty blob has no object" "$(rgw_list bkt | grep -c af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262)" 0
check "the multi-chunk file has a blob index" grep -q ' blobs/b3/' <(rgw_list bkt)
casfs_ok "cat from s3" --store s3://bkt cat tree/hello.txt
check_eq "cat from s3" "$(cat "$TMP/out")" hello
casfs_ok "ls from s3" --store s3://bkt ls tree
check_eq "ls from s3 is the local ls" "$(cat "$TMP/out")" "$("$CASFS" --store "$A" ls tree)"
check_files s3://bkt tree "$TMP/src"

before=$(rgw_list_full bkt)
casfs_ok "second copy to s3" copy "$A" s3://bkt
check_eq "second copy prints the same" "$(sort "$TMP/out")" "$want"
check_eq "a second copy sends no object again" \
        "$(rgw_list_full bkt | grep -v -e '^roots/' -e '^roots.index ')" \
        "$(grep -v -e '^roots/' -e '^roots.index ' <<<"$before")"

casfs_ok "copy back to a fresh store" copy s3://bkt "$TMP/b"
check_eq "copy back prints NAME DIGEST per root" "$(sort "$TMP/out")" "$want"
check_eq "the fresh store has the same roots" "$(local_roots "$TMP/b" | sort)" "$(local_roots "$A" | sort)"
fsck_clean "$TMP/b"
check_files "$TMP/b" tree "$TMP/src"
check "the single file back" cmp -s <("$CASFS" --store "$TMP/b" cat lonely) "$TMP/lonely.bin"

# remote to remote: s3:// to file://, checked by the independent reader, and s3:// to s3://
casfs_ok "copy from s3 to file://" copy s3://bkt "file://$TMP/from-s3"
check_eq "copy from s3 to file:// prints every root" "$(sort "$TMP/out")" "$want"
check "the file:// copy of s3 holds the layout (check-layout.py)" python3 "$REMOTE_DIR/check-layout.py" --objects "$TMP/from-s3"
casfs_ok "copy from s3 to s3 under a prefix" copy s3://bkt s3://prefixed/copy-of-bkt
check_eq "copy from s3 to s3 prints every root" "$(sort "$TMP/out")" "$want"
check_eq "s3 to s3: the same objects" "$(rgw_list prefixed copy-of-bkt/ | sed 's| copy-of-bkt/| |' | grep -v ' roots')" \
        "$(rgw_list bkt | grep -v ' roots')"

# one root, under a prefix
casfs_ok "copy one root to a prefix" copy --jobs 4 "$A" s3://prefixed/some/where lonely
check_eq "copy of one root prints it alone" "$(cat "$TMP/out")" "$want_lonely"
check_eq "only the prefix is used" "$(rgw_list prefixed | awk '$2 !~ /^(some\/where|copy-of-bkt)\// {print $2}')" ""
casfs_ok "roots under the prefix" --store s3://prefixed/some/where roots
check_eq "roots under the prefix: the one root" "$(cut -f1 "$TMP/out")" lonely
casfs_ok "copy back from the prefix" copy s3://prefixed/some/where "$TMP/c"
check "the single file from the prefix" cmp -s <("$CASFS" --store "$TMP/c" cat lonely) "$TMP/lonely.bin"

# ---- import straight to s3 ----
casfs_ok "import straight to s3" --store s3://direct import --name tree "$TMP/src"
check_eq "import to s3 gives the local digest" "$(cat "$TMP/out")" "$want_tree"
casfs_ok "copy back the imported root" copy s3://direct "$TMP/d"
fsck_clean "$TMP/d"
check_files "$TMP/d" tree "$TMP/src"
before=$(rgw_list_full direct | grep -v -e '^roots/' -e '^roots.index ')
casfs_ok "import to s3 again" --store s3://direct import --name tree "$TMP/src"
check_eq "a second import to s3 sends no object again" \
        "$(rgw_list_full direct | grep -v -e '^roots/' -e '^roots.index ')" "$before"

# ---- a copy killed at random moments ----
# more to send, so that kills land while objects are in flight
for i in $(seq 1 40); do head -c $((100000 + i * 9000)) /dev/urandom >"$TMP/src/many/big$i"; done
casfs_ok "import the larger tree" --store "$A" import --name tree "$TMP/src"
want_tree=$(cat "$TMP/out")
want=$(sorted_lines "$want_tree
$want_lonely")
rounds=${REMOTE_KILL_ROUNDS:-6} killed=0
objects() { rgw_list_full kill | grep -v -e '^roots/' -e '^roots.index '; }
# objects there before keep their time and ETag: none was sent twice
# (join: KEY SIZE TIME ETAG SIZE TIME ETAG)
resent() { join <(sort <<<"$1") <(sort <<<"$2") | awk '$3 != $6 || $4 != $7 {print $1}' | head -n 5; }
for round in $(seq 1 "$rounds"); do
        before=$(objects)
        "$CASFS" copy --jobs 8 "$A" s3://kill >/dev/null 2>>"$ALL_OUTPUT" &
        pid=$!
        sleep "0.$(printf '%03d' $((RANDOM % 300 + 30)))"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null && rc=0 || rc=$?
        [ "$rc" -ne 137 ] || killed=$((killed + 1))
        check_eq "nothing complete sent twice (round $round)" "$(resent "$before" "$(objects)")" ""
        # a root present is complete: it copies back whole
        present=$(rgw_list kill roots/ | awk '{sub("^roots/", "", $2); print $2}')
        for name in $present; do
                rm -rf "$TMP/k"
                casfs_ok "root $name present after kill $round copies back" copy s3://kill "$TMP/k" "$name" &&
                        fsck_clean "$TMP/k"
        done
done
echo "the copy was killed while it ran in $killed of $rounds rounds" >&2
check "at least one kill landed while the copy ran" test "$killed" -ge 1
before=$(objects)
casfs_ok "the copy after the kills" copy "$A" s3://kill
check_eq "the copy after the kills prints every root" "$(sort "$TMP/out")" "$want"
check_eq "nothing complete sent twice after the kills" "$(resent "$before" "$(objects)")" ""
casfs_ok "copy back after the kills" copy s3://kill "$TMP/e"
check_eq "copy back after the kills: every root" "$(sort "$TMP/out")" "$want"
fsck_clean "$TMP/e"
check_files "$TMP/e" tree "$TMP/src"

# ---- errors: one line, exit 1, no secret ----
casfs_fails "a missing bucket" 'nosuchbucket' --store s3://nosuchbucket roots
casfs_fails "a copy to a missing bucket" 'nosuchbucket' copy "$A" s3://nosuchbucket
casfs_fails "an import to a missing bucket" 'nosuchbucket' --store s3://nosuchbucket import "$TMP/lonely.bin"
check "no bucket made by the failed commands" test -z "$(rgw_s3 GET / | grep -o nosuchbucket)"
AWS_SECRET_ACCESS_KEY=wrong-$SECRET casfs_fails "a wrong secret key" 'denied|forbidden|credential|signature|key|403' --store s3://bkt roots
AWS_ACCESS_KEY_ID=NOSUCHACCESSKEY casfs_fails "an unknown access key" 'denied|forbidden|credential|signature|key|403' --store s3://bkt roots
AWS_SECRET_ACCESS_KEY=wrong-$SECRET casfs_fails "a copy with a wrong secret key" 'denied|forbidden|credential|signature|key|403' copy "$A" s3://bkt
port=$(rgw_free_port)
casfs_fails "an unreachable endpoint (--s3-endpoint)" "127.0.0.1:$port|refused|connect|reach" \
        --s3-endpoint "http://127.0.0.1:$port" --store s3://bkt roots
AWS_ENDPOINT_URL=http://127.0.0.1:$port casfs_fails "an unreachable endpoint (AWS_ENDPOINT_URL)" \
        "127.0.0.1:$port|refused|connect|reach" copy "$A" s3://bkt
no_secret "$SECRET"
no_secret "wrong-$SECRET"

finish
