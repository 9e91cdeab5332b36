#!/bin/bash
# vmdk interoperability with qemu-img/qemu-io 7.2, for every subformat:
#  1. qemu-img creates, qemu-io writes patterns -> we read identical bytes;
#  2. we create and write -> qemu-img check (sparse) is clean, qemu-img
#     compare against a raw reference written with the same patterns agrees,
#     qemu-img info agrees on virtual size and format;
#  3. we convert a raw file into streamOptimized with compressed grains ->
#     qemu-img reads it back identical;
#  4. minikvm-img info's format-specific data (JSON and human) and map
#     --output=json equal qemu-img's for every subformat;
#  5. minikvm-img check (clean, -r, grains past the end of their extent
#     files), human map (the extent file named) and open errors (missing
#     extents, bad descriptors, not a vmdk) equal qemu-img's: stdout,
#     stderr and exit code.
# Uses tests/integration/vmdk_io.c (built here against build/libminikvm.a).
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || {
	echo "test_vmdk_interop: SKIP (qemu-img/qemu-io not installed)"; exit 0; }
make -s build/libminikvm.a
tmp=$(mktemp -d /tmp/vmdk_interop.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
io=$tmp/vmdk_io
gcc -std=gnu11 -O2 -D_GNU_SOURCE -I. -o "$io" tests/integration/vmdk_io.c \
	build/libminikvm.a -laio -luring -lz -ljansson -lpthread

qio() { qemu-io "$@" >/dev/null; }
fail() { echo "test_vmdk_interop: FAIL: $*" >&2; exit 1; }
ok() { echo "  ok: $*"; }

MiB=$((1024 * 1024))
GiB=$((1024 * MiB))
# offset length byte: unaligned, grain-crossing, and across the 2 GiB split
patterns() {
	local size=$1
	echo "0 65536 0x11"
	echo "$((65536 - 512)) 1536 0x22"
	echo "$((5 * MiB + 4096)) $((200 * 1024)) 0x33"
	if [ "$size" -gt $((2 * GiB)) ]; then
		echo "$((2 * GiB - 8192)) 16384 0x44"
		echo "$((size - 65536)) 65536 0x55"
	fi
}

size_of() { case $1 in twoGb*) echo $((2 * GiB + 64 * MiB));; *) echo $((64 * MiB));; esac; }

for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat \
	   streamOptimized; do
	echo "== $sub"
	size=$(size_of "$sub")
	d=$tmp/$sub
	mkdir -p "$d"

	# 1. qemu writes, we read
	qemu-img create -q -f vmdk -o subformat=$sub "$d/q.vmdk" "$size"
	if [ "$sub" = streamOptimized ]; then
		# qemu writes stream images through convert (compressed grains)
		qemu-img create -q -f raw "$d/src.raw" "$size"
		while read -r off len byte; do
			qio -f raw -c "write -P $byte $off $len" "$d/src.raw"
		done < <(patterns "$size")
		qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$d/src.raw" \
			"$d/q.vmdk"
	else
		while read -r off len byte; do
			qio -f vmdk -c "write -P $byte $off $len" "$d/q.vmdk"
		done < <(patterns "$size")
	fi
	qemu-img convert -q -f vmdk -O raw "$d/q.vmdk" "$d/q-ref.raw"
	"$io" dump "$d/q.vmdk" "$d/q-ours.raw" || fail "$sub: we cannot read qemu's image"
	cmp -s "$d/q-ref.raw" "$d/q-ours.raw" || fail "$sub: content of qemu's image differs"
	ok "$sub: qemu-written image reads identically"
	"$io" info "$d/q.vmdk" | grep -qx "create-type: $sub" || fail "$sub: create type"

	# 2. we write, qemu reads
	"$io" create "$d/m.vmdk" "$sub" "$size" || fail "$sub: create"
	qemu-img create -q -f raw "$d/m-ref.raw" "$size"
	while read -r off len byte; do
		"$io" write "$d/m.vmdk" "$off" "$len" "$byte" || fail "$sub: write"
		qio -f raw -c "write -P $byte $off $len" "$d/m-ref.raw"
	done < <(patterns "$size")
	case $sub in *Sparse|streamOptimized)
		qemu-img check -q -f vmdk "$d/m.vmdk" || fail "$sub: qemu-img check on our image"
		ok "$sub: qemu-img check clean";;
	esac
	qemu-img compare -q -f vmdk -F raw "$d/m.vmdk" "$d/m-ref.raw" ||
		fail "$sub: qemu-img compare of our image"
	ok "$sub: our image compares equal in qemu-img"
	info=$(qemu-img info --output=json "$d/m.vmdk")
	echo "$info" | grep -q "\"virtual-size\": $size," || fail "$sub: qemu virtual size: $info"
	echo "$info" | grep -q '"format": "vmdk"' || fail "$sub: qemu format"
	echo "$info" | grep -q "\"create-type\": \"$sub\"" || fail "$sub: qemu create type"
	"$io" info "$d/m.vmdk" | grep -qx "virtual-size: $size" || fail "$sub: our size"
	ok "$sub: qemu-img info agrees (size $size, create type)"
done

echo "== zeroed grains"
d=$tmp/zg
mkdir -p "$d"
"$io" create "$d/z.vmdk" monolithicSparse $((8 * MiB)) zeroed
qemu-img create -q -f raw "$d/z.raw" $((8 * MiB))
"$io" write "$d/z.vmdk" 0 $((1 * MiB)) 0x66
qio -f raw -c "write -P 0x66 0 1M" "$d/z.raw"
"$io" zero "$d/z.vmdk" 65536 131072
qio -f raw -c "write -z 65536 128k" "$d/z.raw"
qemu-img check -q "$d/z.vmdk" || fail "zeroed grains: check"
qemu-img compare -q -f vmdk -F raw "$d/z.vmdk" "$d/z.raw" || fail "zeroed grains: compare"
qio -f vmdk -c "write -z 262144 64k" "$d/z.vmdk"
qio -f raw -c "write -z 262144 64k" "$d/z.raw"
"$io" dump "$d/z.vmdk" "$d/z-ours.raw"
cmp -s "$d/z.raw" "$d/z-ours.raw" || fail "zeroed grains written by qemu"
ok "zeroed-grain GTEs interoperate"

echo "== backing files (parentCID / parentFileNameHint)"
d=$tmp/bk
mkdir -p "$d"
qemu-img create -q -f vmdk "$d/base.vmdk" 8M
qio -f vmdk -c "write -P 0x77 0 4M" "$d/base.vmdk"
qemu-img create -q -f vmdk -b base.vmdk -F vmdk "$d/qchild.vmdk"
qio -f vmdk -c "write -P 0x88 1M 4k" "$d/qchild.vmdk"
qemu-img convert -q -O raw "$d/qchild.vmdk" "$d/qchild-ref.raw"
"$io" dump "$d/qchild.vmdk" "$d/qchild-ours.raw" || fail "backing: read qemu's child"
cmp -s "$d/qchild-ref.raw" "$d/qchild-ours.raw" || fail "backing: qemu's child differs"
"$io" create "$d/mchild.vmdk" monolithicSparse 0 base.vmdk
"$io" write "$d/mchild.vmdk" $((2 * MiB + 100)) 300 0x99
qemu-img convert -q -O raw "$d/base.vmdk" "$d/mchild-ref.raw"
qio -f raw -c "write -P 0x99 $((2 * MiB + 100)) 300" "$d/mchild-ref.raw"
qemu-img check -q "$d/mchild.vmdk" || fail "backing: check of our child"
qemu-img compare -q -f vmdk -F raw "$d/mchild.vmdk" "$d/mchild-ref.raw" ||
	fail "backing: qemu reads our child differently"
qemu-img info "$d/mchild.vmdk" | grep -q "backing file: base.vmdk" || fail "backing: name"
# our first write to the base gives it a new CID: qemu then refuses the stale child
"$io" write "$d/base.vmdk" 0 512 0x12
if qemu-io -c "read 6M 4k" "$d/qchild.vmdk" 2>&1 | grep -q "read 4096/4096"; then
	fail "backing: qemu still reads a child whose parent changed (CID not updated)"
fi
ok "backing chains interoperate both ways (CID update honoured by qemu)"

echo "== raw -> streamOptimized (compressed grains written by us)"
d=$tmp/conv
mkdir -p "$d"
head -c $((3 * MiB)) /dev/urandom > "$d/src.raw"
dd if=/dev/zero of="$d/src.raw" bs=64k seek=10 count=8 conv=notrunc status=none
printf 'tail' >> "$d/src.raw"	# a last partial grain
truncate -s $(( ($(stat -c %s "$d/src.raw") + 511) / 512 * 512 )) "$d/src.raw"
"$io" fromraw "$d/src.raw" "$d/s.vmdk" streamOptimized || fail "fromraw"
qemu-img check -q "$d/s.vmdk" || fail "stream: check"
qemu-img compare -q -f vmdk -F raw "$d/s.vmdk" "$d/src.raw" || fail "stream: compare"
ok "our streamOptimized image reads identically in qemu"

echo "== grains larger than 128 sectors (qemu accepts up to 0x200000; spec: powers of two)"
for g in 256 2048; do
	d=$tmp/grain$g
	mkdir -p "$d"
	# qemu-img creates only 128-sector grains: patch grainSize of an empty
	# image (its grain directory just shrinks; the first entries keep
	# pointing at the zeroed grain tables)
	qemu-img create -q -f vmdk "$d/g.vmdk" $((64 * MiB))
	python3 -c 'import struct,sys; f=open(sys.argv[1],"r+b"); f.seek(20); f.write(struct.pack("<Q",int(sys.argv[2])))' \
		"$d/g.vmdk" $g
	qemu-img info "$d/g.vmdk" | grep -q "cluster_size: $((g * 512))" || fail "grain $g: qemu-img info"
	qio -f vmdk -c "write -P 1 1000 5000" -c "write -P 2 3M 300k" -c "write -P 3 63M 1M" "$d/g.vmdk"
	qemu-img convert -q -O raw "$d/g.vmdk" "$d/q.raw"
	"$io" dump "$d/g.vmdk" "$d/o.raw" || fail "grain $g: dump"
	cmp -s "$d/q.raw" "$d/o.raw" || fail "grain $g: qemu-written grains read differently"
	"$io" write "$d/g.vmdk" $((10 * MiB + 77)) 12345 0x44 || fail "grain $g: write"
	"$io" write "$d/g.vmdk" $((20 * MiB)) $((2 * MiB)) 0x45 || fail "grain $g: write"
	"$io" write "$d/g.vmdk" 4096 512 0x46 || fail "grain $g: write"
	qio -f raw -c "write -P 0x44 $((10 * MiB + 77)) 12345" -c "write -P 0x45 20M 2M" \
		-c "write -P 0x46 4096 512" "$d/q.raw"
	qemu-img check -q "$d/g.vmdk" || fail "grain $g: qemu-img check after our writes"
	qemu-img compare -q -f vmdk -F raw "$d/g.vmdk" "$d/q.raw" || fail "grain $g: compare"
	qemu-img map --output=json "$d/g.vmdk" | grep -q "\"length\": $((g * 512))," ||
		fail "grain $g: map granularity"
done
ok "grainSize 256 and 2048 sectors: qemu writes/we read, we write/qemu checks and compares"
d=$tmp/grainbad
mkdir -p "$d"
for g in 96 $((0x400000)); do
	qemu-img create -q -f vmdk "$d/b.vmdk" 8M
	python3 -c 'import struct,sys; f=open(sys.argv[1],"r+b"); f.seek(20); f.write(struct.pack("<Q",int(sys.argv[2])))' \
		"$d/b.vmdk" $g
	"$io" info "$d/b.vmdk" 2> "$d/err" >/dev/null && fail "grainSize $g accepted"
	grep -q "invalid grainSize $g" "$d/err" || fail "grainSize $g: unclear error: $(cat "$d/err")"
done
ok "grainSize 96 (not a power of two) and 0x400000 (beyond qemu's limit) refused"

img=${IMG:-build/minikvm-img}
if [ -x "$img" ]; then
	echo "== minikvm-img convert/compare/info/check with vmdk"
	d=$tmp/tool
	mkdir -p "$d"
	head -c $((3 * MiB)) /dev/urandom > "$d/src.raw"
	truncate -s $((16 * MiB)) "$d/src.raw"
	for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat \
		   streamOptimized; do
		"$img" convert -f raw -O vmdk -o subformat=$sub "$d/src.raw" "$d/$sub.vmdk" ||
			fail "minikvm-img convert to $sub"
		qemu-img compare -q -f vmdk -F raw "$d/$sub.vmdk" "$d/src.raw" ||
			fail "minikvm-img convert to $sub: qemu sees different content"
		qemu-img convert -q -f raw -O vmdk -o subformat=$sub "$d/src.raw" "$d/q$sub.vmdk"
		"$img" compare -f vmdk -F raw "$d/q$sub.vmdk" "$d/src.raw" >/dev/null ||
			fail "minikvm-img compare of qemu's $sub"
		"$img" info "$d/q$sub.vmdk" | grep -q "create type: $sub" ||
			fail "minikvm-img info of qemu's $sub"
	done
	"$img" convert -c -f raw -O vmdk -o subformat=streamOptimized "$d/src.raw" "$d/c.vmdk" ||
		fail "minikvm-img convert -c"
	qemu-img check -q "$d/c.vmdk" || fail "convert -c: qemu-img check"
	qemu-img compare -q -f vmdk -F raw "$d/c.vmdk" "$d/src.raw" || fail "convert -c: compare"
	"$img" check "$d/c.vmdk" >/dev/null || fail "minikvm-img check of our stream"
	ok "minikvm-img converts to/compares/inspects every subformat"
	# format-specific info (cid, parent-cid, create-type, extents with
	# qemu's per-extent fields) and map, JSON and human, as qemu-img shows
	# them for images made by either tool; relative and absolute names
	fs_json() { python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["format-specific"], indent=1))'; }
	fs_human() { sed -n '/^Format specific information:/,$p'; }
	imgabs=$(realpath "$img")
	qemu-img create -q -f vmdk -b qmonolithicSparse.vmdk -F vmdk "$d/qchild.vmdk"
	for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat \
		   streamOptimized child; do
		for f in "$d/q$sub.vmdk" "$d/$sub.vmdk"; do
			[ -e "$f" ] || continue
			for name in "$f" "./$(basename "$f")"; do
				a=$(cd "$d" && "$imgabs" info --output=json "$name" | fs_json) ||
					fail "info json of $f"
				b=$(cd "$d" && qemu-img info --output=json "$name" | fs_json)
				[ "$a" = "$b" ] || fail "$sub: info json differs for $name:
ours: $a
qemu: $b"
				a=$(cd "$d" && "$imgabs" info "$name" | fs_human)
				b=$(cd "$d" && qemu-img info "$name" | fs_human)
				[ -n "$b" ] && [ "$a" = "$b" ] || fail "$sub: info differs for $name:
ours: $a
qemu: $b"
			done
			[ "$("$img" map --output=json "$f")" = "$(qemu-img map --output=json "$f")" ] ||
				fail "$sub: map json differs for $f"
		done
	done
	ok "minikvm-img info (format-specific, JSON and human) and map json match qemu-img for every subformat"
	cp "$d/monolithicSparse.vmdk" "$d/rs.vmdk"
	! "$img" resize "$d/rs.vmdk" 32M 2> "$d/rs.err" || fail "vmdk resize accepted"
	! qemu-img resize "$d/rs.vmdk" 32M 2>/dev/null || fail "qemu-img resized a vmdk?"
	[ "$(wc -l < "$d/rs.err")" -eq 1 ] && grep -q "does not support resizing" "$d/rs.err" ||
		fail "vmdk resize: unclear error: $(cat "$d/rs.err")"
	cmp -s "$d/rs.vmdk" "$d/monolithicSparse.vmdk" || fail "vmdk resize changed the image"
	ok "vmdk resize refused with one line, as qemu-img refuses it"

	# check as qemu-img 7.2: a clean image reports only "No errors were
	# found" (JSON: check-errors, filename, format), -r is refused (exit
	# 63), the first grain past the end of its extent file (a flat extent
	# past the end of its file) fails the check: "ERROR: ..." then "Check
	# failed: Invalid argument", exit 1; the human map names the extent
	# file that holds the data, not the descriptor; open errors word for
	# word. Compared: stdout, stderr (program name aside), exit code.
	as_qemu() {
		local qo qe qr=0 mo me mr=0
		qo=$(cd "$d" && qemu-img "$@" 2>"$tmp/q.err") || qr=$?
		mo=$(cd "$d" && "$imgabs" "$@" 2>"$tmp/m.err") || mr=$?
		qe=$(cat "$tmp/q.err"); me=$(sed 's/^minikvm-img:/qemu-img:/' "$tmp/m.err")
		[ "$qo" = "$mo" ] && [ "$qe" = "$me" ] && [ "$qr" = "$mr" ] ||
			fail "'$*' differs from qemu-img:
qemu-img (exit $qr):
$qo
$qe
minikvm-img (exit $mr):
$mo
$me"
	}
	# set_gte FILE GRAIN VALUE: overwrite a grain table entry of a sparse extent
	set_gte() {
		python3 -c 'import os, struct, sys
path, grain, value = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 0)
f = open(path, "r+b")
h = f.read(512)
gtes, gd = struct.unpack_from("<I", h, 44)[0], struct.unpack_from("<Q", h, 56)[0]
if gd == 0xffffffffffffffff:	# streamOptimized: the footer holds the header
	f.seek(os.path.getsize(path) - 1024)
	gd = struct.unpack_from("<Q", f.read(512), 56)[0]
f.seek(gd * 512 + grain // gtes * 4)
gt = struct.unpack("<I", f.read(4))[0]
assert gt, "no grain table"
f.seek(gt * 512 + grain % gtes * 4)
f.write(struct.pack("<I", value))' "$@"
	}
	check_modes=("" "--output=json" "-q" "-r all" "-r leaks --output=json")
	for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat \
		   streamOptimized; do
		for f in "q$sub.vmdk" "$sub.vmdk"; do
			for args in "${check_modes[@]}"; do
				# shellcheck disable=SC2086
				as_qemu check $args "$f"
			done
			for name in "$f" "./$f" "$d/$f"; do
				as_qemu map "$name"
			done
		done
	done
	qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$d/big-ts.vmdk" 3G
	qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat "$d/big-tf.vmdk" 3G
	qio -f vmdk -c "write -P 1 0 64k" -c "write -P 2 2G 1M" -c "write -P 3 2560M 64k" \
		"$d/big-ts.vmdk"
	qio -f vmdk -c "write -P 1 0 64k" -c "write -P 2 2G 1M" -c "write -P 3 2560M 64k" \
		"$d/big-tf.vmdk"
	for name in big-ts.vmdk big-tf.vmdk "$d/big-ts.vmdk" "$d/big-tf.vmdk"; do
		as_qemu map "$name"
		as_qemu check "$name"
	done
	ok "vmdk check (clean, -r refused) and human map (extent files named) match qemu-img"
	cp "$d/qmonolithicSparse.vmdk" "$d/bad-ms.vmdk"
	set_gte "$d/bad-ms.vmdk" 2 0x100000
	cp "$d/qstreamOptimized.vmdk" "$d/bad-so.vmdk"
	set_gte "$d/bad-so.vmdk" 3 0x100000
	qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$d/bad-ts.vmdk" 3G
	qio -f vmdk -c "write -P 1 0 64k" -c "write -P 2 2G 1M" "$d/bad-ts.vmdk"
	set_gte "$d/bad-ts-s002.vmdk" 1 0x7fffffff
	qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat "$d/bad-tf.vmdk" 3G
	truncate -s 0 "$d/bad-tf-f002.vmdk"
	qemu-img create -q -f vmdk -o subformat=monolithicFlat "$d/bad-mf.vmdk" 16M
	truncate -s 0 "$d/bad-mf-flat.vmdk"
	qemu-img create -q -f vmdk -o zeroed_grain=on "$d/zg.vmdk" 16M
	qio -f vmdk -c "write -P 1 0 256k" -c "write -z 64k 128k" "$d/zg.vmdk"
	for f in bad-ms.vmdk bad-so.vmdk bad-ts.vmdk bad-tf.vmdk bad-mf.vmdk zg.vmdk; do
		for args in "${check_modes[@]}"; do
			# shellcheck disable=SC2086
			as_qemu check $args "$f"
		done
	done
	ok "vmdk check of grains past the end of their extent files matches qemu-img"
	sed 's/qmonolithicFlat-flat.vmdk/gone-flat.vmdk/' "$d/qmonolithicFlat.vmdk" > "$d/nf.vmdk"
	sed 's/qtwoGbMaxExtentSparse-s001.vmdk/gone-s001.vmdk/' "$d/qtwoGbMaxExtentSparse.vmdk" \
		> "$d/ns.vmdk"
	sed 's/createType="monolithicFlat"/createType="bogus"/' "$d/qmonolithicFlat.vmdk" \
		> "$d/bogus.vmdk"
	grep -av createType "$d/qmonolithicFlat.vmdk" > "$d/notype.vmdk"
	: > "$d/empty.img"
	qemu-img create -q -f qcow2 "$d/q.qcow2" 1M
	for args in nf.vmdk ns.vmdk bogus.vmdk notype.vmdk "-f vmdk src.raw" "-f vmdk empty.img" \
		    "-f vmdk q.qcow2" "-f qcow2 qmonolithicSparse.vmdk" "-f vmdk nope.vmdk"; do
		for cmd in info check map; do
			# shellcheck disable=SC2086
			as_qemu $cmd $args
		done
		# shellcheck disable=SC2086
		as_qemu convert -O raw $args "$d/never.raw"
		# shellcheck disable=SC2086
		as_qemu compare $args src.raw
	done
	ok "vmdk open errors (missing extents, bad descriptors, not a vmdk) word for word as qemu-img"
fi

echo "test_vmdk_interop: PASS"
