#!/bin/bash
# Interoperability of the qcow (v1), cow and cloop formats with qemu-img
# 7.2 as the oracle: images qemu-img/qemu-io write read back identically
# through minikvm-img; qcow images minikvm-img writes compare identical
# under `qemu-img compare`; a cloop image (create_compressed_fs, or built
# here from the format description when cloop-utils is missing) reads the
# same through both tools; cow images we create read through their backing
# file; qcow map (JSON and human) equals qemu-img's with and without a
# backing file; hostile headers fail with one clear line. Exit 0 = all
# passed.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/cloop-lib.sh
IMG=${IMG:-build/minikvm-img}
pass=0; failn=0; failed=""
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { failn=$((failn + 1)); failed="$failed|$*"; echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

for tool in "$IMG" qemu-img qemu-io python3; do
	command -v "$tool" >/dev/null || [ -x "$tool" ] ||
		{ echo "FAIL: $tool is missing (build minikvm-img; run scripts/setup)"; exit 1; }
done
T=$(mktemp -d /tmp/minikvm-interop-XXXXXX)
trap 'rm -rf "$T"' EXIT

# ours FMT IMAGE OUT: read the whole image into a raw file with minikvm-img.
ours() { "$IMG" convert -f "$1" -O raw "$2" "$3"; }
theirs() { qemu-img convert -f "$1" -O raw "$2" "$3"; }
qio() { qemu-io -f "$1" "${@:3}" "$2" >/dev/null; }
same() { cmp -s "$1" "$2"; }

# ---- qemu writes qcow, we read ----
qemu-img create -f qcow "$T/q.qcow" 8M >/dev/null
qio qcow "$T/q.qcow" -c "write -P 0x11 0 64k" -c "write -P 0x22 1M 3k" \
	-c "write -P 0x33 7M 4k" -c "write -P 0x44 2097000 1000"
ours qcow "$T/q.qcow" "$T/q.ours" && theirs qcow "$T/q.qcow" "$T/q.theirs"
check "qcow written by qemu-io reads identically" same "$T/q.ours" "$T/q.theirs"

qemu-img create -f raw "$T/base.raw" 4M >/dev/null
qio raw "$T/base.raw" -c "write -P 0x55 0 4M" -c "write -P 0x56 1M 512"
qemu-img create -f qcow -b base.raw -F raw "$T/ov.qcow" >/dev/null
qio qcow "$T/ov.qcow" -c "write -P 0x66 1000 100" -c "write -P 0x67 100000 70000"
ours qcow "$T/ov.qcow" "$T/ov.ours" && theirs qcow "$T/ov.qcow" "$T/ov.theirs"
check "qcow overlay over a raw backing file reads identically" same "$T/ov.ours" "$T/ov.theirs"

qemu-img create -f qcow "$T/c.qcow" 1M >/dev/null
qio qcow "$T/c.qcow" -c "write -c -P 0x77 0 4k" -c "write -c -P 0x78 8k 4k"
ours qcow "$T/c.qcow" "$T/c.ours" && theirs qcow "$T/c.qcow" "$T/c.theirs"
check "qcow compressed clusters (qemu-io write -c) read identically" \
	same "$T/c.ours" "$T/c.theirs"

# ---- we write qcow, qemu-img compares ----
qemu-img create -f raw "$T/pat.raw" 6M >/dev/null
qio raw "$T/pat.raw" -c "write -P 0x21 0 100k" -c "write -P 0x22 2M 4097" \
	-c "write -P 0x23 5M 1M"
"$IMG" convert -f raw -O qcow "$T/pat.raw" "$T/w.qcow"
check "qcow written by minikvm-img convert: qemu-img compare" \
	qemu-img compare -q -f raw -F qcow "$T/pat.raw" "$T/w.qcow"
"$IMG" convert -c -f raw -O qcow "$T/pat.raw" "$T/wc.qcow"
check "compressed qcow written by minikvm-img convert -c: qemu-img compare" \
	qemu-img compare -q -f raw -F qcow "$T/pat.raw" "$T/wc.qcow"
check "convert -c output is compressed (a quarter of the plain image or less)" \
	test $(($(stat -c %s "$T/wc.qcow") * 4)) -le "$(stat -c %s "$T/w.qcow")"
"$IMG" create -f qcow "$T/cr.qcow" 10M >/dev/null
qemu-img create -f qcow "$T/cr.ref" 10M >/dev/null
check "qcow created by minikvm-img is byte-identical to qemu-img's" cmp -s "$T/cr.qcow" "$T/cr.ref"
"$IMG" create -f qcow -b base.raw -F raw "$T/ov2.qcow" >/dev/null
check "qcow overlay created by minikvm-img: qemu-img compare with its backing" \
	qemu-img compare -q -f qcow -F raw "$T/ov2.qcow" "$T/base.raw"
qio qcow "$T/ov2.qcow" -c "write -P 0x68 3000 5000"
ours qcow "$T/ov2.qcow" "$T/ov2.ours" && theirs qcow "$T/ov2.qcow" "$T/ov2.theirs"
check "overlay we created, qemu-io wrote: reads identically" same "$T/ov2.ours" "$T/ov2.theirs"

# ---- qcow map: unallocated clusters are "present": false without a backing ----
map_same() { diff <("$IMG" map --output="$1" "$2" 2>&1) <(qemu-img map --output="$1" "$2" 2>&1); }
qio raw "$T/pat.raw" -c "write -P 0 3M 256k" -c "write -P 0x24 3M 4k"	# data amid written zeroes
qemu-img convert -f raw -O qcow "$T/pat.raw" "$T/qc.qcow"
qemu-img convert -f raw -O qcow -B base.raw -F raw "$T/pat.raw" "$T/qcb.qcow"
check "qcow map json: qemu-img convert output has absent clusters" \
	grep -q '"present": false, "zero": true' <(qemu-img map --output=json "$T/qc.qcow")
for f in cr.ref q.qcow qc.qcow ov.qcow qcb.qcow c.qcow w.qcow; do
	check "qcow map json: $f as qemu-img" map_same json "$T/$f"
done
for f in cr.ref q.qcow qc.qcow ov.qcow qcb.qcow w.qcow; do
	check "qcow map human: $f as qemu-img" map_same human "$T/$f"
done

# ---- qcow check (QEMU's qcow driver has none), resize (QEMU can't) ----
for f in q.qcow ov.qcow c.qcow w.qcow wc.qcow; do
	check "qcow check: $f is clean" "$IMG" check -q "$T/$f"
done
cp "$T/q.qcow" "$T/lk.qcow"
truncate -s +12288 "$T/lk.qcow"
"$IMG" check "$T/lk.qcow" > "$T/lk.out" 2>&1
rc=$?
check "qcow check: 3 leaked clusters at the end, exit 3" \
	bash -c "[ $rc -eq 3 ] && grep -q '^3 leaked clusters were found' '$T/lk.out'"
"$IMG" check -q -r leaks "$T/lk.qcow"
check "qcow check -r leaks cuts them; qemu-img compare unchanged" \
	bash -c "'$IMG' check -q '$T/lk.qcow' && qemu-img compare -q '$T/lk.qcow' '$T/q.qcow'"
cp "$T/q.qcow" "$T/bad.qcow"
python3 - "$T/bad.qcow" <<'EOF'
import struct, sys
f = open(sys.argv[1], 'r+b')
l1 = struct.unpack('>Q', f.read(48)[40:48])[0]
f.seek(l1); l2 = struct.unpack('>Q', f.read(8))[0]
f.seek(l2); d0 = f.read(8)
f.seek(l2 + 8 * 40); f.write(struct.pack('>Q', 1 << 40))	# data beyond the end
f.seek(l2 + 8 * 41); f.write(d0)				# shares cluster 0
EOF
"$IMG" check "$T/bad.qcow" > "$T/bad.out" 2>&1
rc=$?
check "qcow check: beyond-EOF and shared clusters are 2 errors, exit 2" \
	bash -c "[ $rc -eq 2 ] && grep -q '^2 errors were found' '$T/bad.out'"
cp "$T/q.qcow" "$T/rs.qcow"
"$IMG" resize "$T/rs.qcow" 16M 2> "$T/rs.err"
rc=$?
qemu-img resize "$T/rs.qcow" 16M 2>/dev/null
qrc=$?
check "qcow resize refused like qemu-img (one clear line)" \
	bash -c "[ $rc -eq 1 ] && [ $qrc -ne 0 ] && [ \$(wc -l < '$T/rs.err') -eq 1 ] &&
		grep -q 'does not support resizing' '$T/rs.err' && cmp -s '$T/rs.qcow' '$T/q.qcow'"

# ---- cloop: qemu-img and minikvm-img read the same image identically ----
head -c 300000 /dev/urandom > "$T/cl.in"
python3 -c 'import sys
sys.stdout.buffer.write(b"".join(bytes([i % 251]) * 1000 for i in range(300)))' \
	>> "$T/cl.in"
make_cloop "$T/cl.in" "$T/a.cloop"
ours cloop "$T/a.cloop" "$T/cl.ours" && theirs cloop "$T/a.cloop" "$T/cl.theirs"
check "cloop reads identically to qemu-img" same "$T/cl.ours" "$T/cl.theirs"
check "cloop content is the compressed input" \
	cmp -s -n "$(stat -c %s "$T/cl.in")" "$T/cl.ours" "$T/cl.in"

# ---- cow: created by us, reads through its backing file ----
"$IMG" create -f cow -b base.raw -F raw "$T/x.cow" >/dev/null
ours cow "$T/x.cow" "$T/x.ours"
check "cow created by minikvm-img reads as its backing file" same "$T/x.ours" "$T/base.raw"
"$IMG" create -f cow -o compat=v2 -b base.raw -F raw "$T/y.cow" >/dev/null
ours cow "$T/y.cow" "$T/y.ours"
check "cow v2 (QEMU layout) created by minikvm-img reads as its backing file" \
	same "$T/y.ours" "$T/base.raw"
check "cow v2 header is QEMU's 1056 bytes plus the bitmap" \
	test "$(stat -c %s "$T/y.cow")" -eq $((1056 + 4 * 1024 * 1024 / 512 / 8))

# ---- cow: the backing file's mtime and size are checked, as UML does ----
cp "$T/base.raw" "$T/mb.raw"
"$IMG" create -q -f cow -b mb.raw -F raw "$T/m.cow"
check "cow create records the backing file's mtime (v3 header, offset 8)" \
	test "$(od -An -tu4 --endian=big -j8 -N4 "$T/m.cow" | tr -d ' ')" = "$(stat -c %Y "$T/mb.raw")"
touch -d '2001-01-01' "$T/mb.raw"
"$IMG" convert -f cow -O raw "$T/m.cow" "$T/m.raw" 2> "$T/m.err"
rc=$?
check "cow refuses a backing file modified since (one clear line, non-zero exit)" \
	bash -c "[ $rc -ne 0 ] && [ \$(wc -l < '$T/m.err') -eq 1 ] && grep -q 'was modified after' '$T/m.err'"
"$IMG" rebase -u -b mb.raw -F raw "$T/m.cow"
check "cow: rebase -u re-records the mtime; the image reads again" \
	bash -c "'$IMG' convert -f cow -O raw '$T/m.cow' '$T/m.raw' && cmp -s '$T/m.raw' '$T/base.raw'"
touch -r "$T/mb.raw" "$T/mref"; truncate -s +512 "$T/mb.raw"; touch -r "$T/mref" "$T/mb.raw"
"$IMG" convert -f cow -O raw "$T/m.cow" "$T/m.raw" 2> "$T/m.err"
check "cow refuses a raw backing file whose size changed" grep -q "bytes but the header records" "$T/m.err"
"$IMG" create -q -f cow -b base.raw -F raw "$T/bad-size.cow" 1M 2> "$T/m.err"
check "cow create refuses a size other than the raw backing file's" \
	grep -q "differs from the backing file" "$T/m.err"

# ---- hostile headers: one clear line, non-zero exit ----
cp "$T/q.qcow" "$T/enc.qcow"
printf '\000\000\000\001' | dd of="$T/enc.qcow" bs=1 seek=36 conv=notrunc status=none
"$IMG" convert -f qcow -O raw "$T/enc.qcow" "$T/enc.raw" 2> "$T/enc.err"
rc=$?
check "encrypted qcow refused with a clear message" \
	grep -q "encrypted" "$T/enc.err"
[ $rc -ne 0 ] && ok "encrypted qcow: non-zero exit" || bad "encrypted qcow: exit 0"
cp "$T/a.cloop" "$T/b.cloop"
printf '\000\000\003\350' | dd of="$T/b.cloop" bs=1 seek=128 conv=notrunc status=none
"$IMG" convert -f cloop -O raw "$T/b.cloop" "$T/b.raw" 2> "$T/b.err"
check "cloop block_size 1000 refused" grep -q "block_size 1000" "$T/b.err"

# ---- open errors and the probed-raw warning, word for word as qemu-img ----
# same_as_qemu ARGS...: in $T, minikvm-img's stdout, stderr (its program
# name read as qemu-img's) and exit code equal qemu-img's for ARGS
IMGABS=$(realpath "$IMG")
same_as_qemu() {
	local qo qe qr mo me mr
	qo=$(cd "$T" && qemu-img "$@" 2>"$T/.q.err"); qr=$?
	mo=$(cd "$T" && "$IMGABS" "$@" 2>"$T/.m.err"); mr=$?
	qe=$(cat "$T/.q.err"); me=$(sed 's/^minikvm-img:/qemu-img:/' "$T/.m.err")
	[ "$qo" = "$mo" ] && [ "$qe" = "$me" ] && [ "$qr" = "$mr" ] && return 0
	printf '  qemu-img (exit %s):\n%s\n%s\n  minikvm-img (exit %s):\n%s\n%s\n' \
		"$qr" "$qo" "$qe" "$mr" "$mo" "$me"
	return 1
}
qemu-img create -q -f raw "$T/e.raw" 1M
qemu-img create -q -f qcow2 "$T/e.qcow2" 1M
qemu-img create -q -f vmdk "$T/e.vmdk" 1M
: > "$T/e.empty"
qemu-img create -q -f raw "$T/gone.raw" 1M
qemu-img create -q -f qcow2 -b gone.raw -F raw "$T/e1.qcow2"
qemu-img create -q -f qcow2 -b e1.qcow2 -F qcow2 "$T/e2.qcow2"
qemu-img create -q -f qcow2 -u -b e.raw -F qcow2 "$T/e3.qcow2" 1M	# wrong backing format
rm "$T/gone.raw"
for cmd in info check map; do
	for args in "nope.img" "-f qcow2 nope.img" "-f foo e.raw" "-f foo nope.img" \
		    "-f qcow2 e.raw" "-f qcow e.raw" "-f vmdk e.raw" "-f vmdk e.qcow2" \
		    "-f qcow2 e.vmdk" "-f qcow e.vmdk" "-f qcow2 e.empty" "-f vmdk e.empty"; do
		# shellcheck disable=SC2086
		check "$cmd $args: error and exit code as qemu-img" same_as_qemu $cmd $args
	done
done
for args in e1.qcow2 e2.qcow2 e3.qcow2; do	# info opens no backing file, as qemu-img
	check "check/map $args (backing file unusable): as qemu-img" \
		bash -c "$(declare -f same_as_qemu); T='$T' IMGABS='$IMGABS'
			same_as_qemu check $args && same_as_qemu map $args"
done
for args in "-O raw nope.img o.raw" "-f qcow2 -O raw nope.img o.raw" \
	    "-f qcow2 -O raw e.raw o.raw" "-f vmdk -O raw e.raw o.raw" "-O raw e2.qcow2 o.raw" \
	    "-O raw e.raw nope.img o.raw" "-n -O qcow2 e.raw nope.qcow2"; do
	# shellcheck disable=SC2086
	check "convert $args: error and exit code as qemu-img" same_as_qemu convert $args
done
for args in "nope.img e.raw" "e.raw nope.img" "-f qcow2 e.raw e.raw" "-F qcow2 e.raw e.raw" \
	    "-f vmdk e.raw e.qcow2" "-F vmdk e.qcow2 e.raw" "e1.qcow2 e.raw" "-F vmdk e.raw e.empty"; do
	# shellcheck disable=SC2086
	check "compare $args: error and exit code as qemu-img" same_as_qemu compare $args
done
# Unknown or unusable formats given with -f/-F/-O, to every command.
for args in "create -f foo x.img 1M" "create -f cloop x.img 1M" "bench -f foo e.raw" \
	    "measure -O foo --size 1M" "measure -O vmdk --size 1M" "measure -f foo -O raw e.raw" \
	    "measure -O foo nope.img" "rebase -f foo -b e.raw -u e.raw" \
	    "rebase -F foo -b e.raw -u e.raw" "rebase -F foo -b e.raw -u nope.img" \
	    "resize -f foo e.raw 2M" "convert -O foo e.raw x.img" "convert -O foo nope.img x.img" \
	    "convert -f foo e.raw x.img" "convert -O cloop e.raw x.img"; do
	# shellcheck disable=SC2086
	check "$args: unknown format as qemu-img" same_as_qemu $args
done
cp "$T/e.raw" "$T/w.raw"
for args in "check -r all w.raw" "check -r leaks --output=json w.raw" "resize w.raw 2M" \
	    "check -r all -f raw w.raw" "check w.raw" "map w.raw" "info w.raw"; do
	# shellcheck disable=SC2086
	check "$args: the probed-raw warning (or none) as qemu-img" same_as_qemu $args
done

echo "test_formats_interop: $pass passed, $failn failed"
[ $failn -eq 0 ] || { echo "failed:$failed" | tr '|' '\n'; exit 1; }
