#!/bin/bash
# qcow2 interoperability with qemu-img/qemu-io 7.2 (the oracle):
#  - images QEMU writes (v2/v3, cluster sizes 512 B..2 MiB, zero clusters,
#    discards, compressed, backing chains, internal snapshots) read back
#    through minikvm identical to `qemu-img convert -O raw`;
#  - images minikvm writes (random writes, write-zeroes, discards on QEMU-
#    created images, chains and its own images) pass `qemu-img check` and
#    `qemu-img compare` against a raw reference;
#  - extended L2 (subcluster) images both ways; snapshots with VM state;
#    persistent dirty bitmaps kept (marked in-use) across our writes and
#    listed by info as qemu-img lists them; extended L2 images minikvm-img
#    creates with preallocation match qemu-img's and take writes;
#    info (JSON and human) identical to qemu-img's for v2, v3 and dirty
#    images, and check of a dirty image as qemu-img check;
#  - zstd compressed clusters both ways, and a damaged zstd cluster.
# Uses build/tests/test_qcow2 helper modes (readcheck, randwrite).
set -u
cd "$(dirname "$0")/../.."
T=$PWD/build/tests/test_qcow2
[ -x "$T" ] || make -s build/tests/test_qcow2 >/dev/null || { echo "FAIL: build"; exit 1; }
command -v qemu-io >/dev/null || { echo "SKIP: no qemu-io"; exit 0; }
dir=$(mktemp -d /tmp/qcow2interop.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
fails=0; passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

readcheck() {	# image: minikvm reads what qemu-img convert produces
	qemu-img convert -O raw "$1" ref.raw || { bad "convert $1"; return; }
	if "$T" readcheck "$1" ref.raw; then ok; else bad "readcheck $1 ($2)"; fi
}

writecheck() {	# image: minikvm writes, qemu checks and compares
	qemu-img convert -O raw "$1" mirror.raw || { bad "convert $1"; return; }
	if ! "$T" randwrite "$1" mirror.raw "$2" 40; then bad "randwrite $1"; return; fi
	if ! qemu-img check -q "$1"; then bad "qemu-img check $1 after minikvm writes ($3)"; return; fi
	if qemu-img compare -q "$1" mirror.raw; then ok; else bad "compare $1 ($3)"; fi
}

qio() { qemu-io "$@" >/dev/null || bad "qemu-io $*"; }

# 1. plain images, both versions, several cluster sizes
for compat in 0.10 1.1; do
	for cs in 512 4096 65536 2097152; do
		img=p-$compat-$cs.qcow2
		qemu-img create -q -f qcow2 -o compat=$compat,cluster_size=$cs $img 12M
		qio -c 'write -P 0x11 0 100k' -c 'write -P 0x22 777 5000' -c 'write -P 0x33 5M 3M' \
		    -c 'write -z 5500k 1M' -c 'discard 7M 1M' -c 'write -P 0x44 12287k 1k' $img
		readcheck $img "compat $compat cluster $cs"
		writecheck $img $cs "compat $compat cluster $cs"
	done
done

# 2. compressed
qemu-img create -q -f raw c.raw 6M
qio -f raw -c 'write -P 0x5 0 1M' -c 'write -P 0x6 2M 1500k' c.raw
head -c 1M /dev/urandom | dd of=c.raw bs=1M seek=4 conv=notrunc status=none
for cs in 4096 65536; do
	qemu-img convert -q -c -O qcow2 -o cluster_size=$cs c.raw comp-$cs.qcow2
	readcheck comp-$cs.qcow2 "compressed cluster $cs"
	writecheck comp-$cs.qcow2 $((cs + 1)) "compressed cluster $cs"
done

# 3. backing chains: raw <- qcow2 v2 <- qcow2 v3 (relative names)
qemu-img create -q -f raw base.raw 8M
qio -f raw -c 'write -P 0xb0 0 8M' base.raw
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 -b base.raw -F raw mid.qcow2
qio -c 'write -P 0xc1 1M 300k' -c 'write -P 0xc2 4095 2' mid.qcow2
qemu-img create -q -f qcow2 -o cluster_size=65536 -b mid.qcow2 -F qcow2 top.qcow2
qio -c 'write -P 0xd1 1200k 100k' -c 'write -z 6M 512k' -c 'write -P 0xd2 7M 3000' top.qcow2
readcheck top.qcow2 "backing chain"
writecheck top.qcow2 77 "backing chain top"
readcheck mid.qcow2 "backing chain middle"

# 4. internal snapshots made by qemu-img
qemu-img create -q -f qcow2 s.qcow2 4M
qio -c 'write -P 0x1 0 4M' s.qcow2
qemu-img snapshot -c one s.qcow2
qio -c 'write -P 0x2 1M 1M' s.qcow2
readcheck s.qcow2 "with snapshot, current state"
writecheck s.qcow2 5 "writes to shared clusters after snapshot"
qemu-img snapshot -a one s.qcow2 && readcheck s.qcow2 "snapshot applied by qemu-img"

# 5. images minikvm creates, written by minikvm, judged by qemu-img
for opts in "compat=0.10" "compat=1.1,refcount_bits=1" "compat=1.1,refcount_bits=64,cluster_size=512"; do
	# created by qemu-img here; minikvm-created images are covered by the unit test
	qemu-img create -q -f qcow2 -o $opts m.qcow2 5M
	writecheck m.qcow2 9 "$opts"
	rm -f m.qcow2
done

# 6. extended L2 entries (subclusters): qemu writes, we read; we write
#    (random writes, zeroes, discards), qemu checks, compares and reads
for cs in 16384 65536 2097152; do
	for back in "" "-b base.raw -F raw"; do
		img=x-$cs${back:+-b}.qcow2
		qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=$cs $back $img 8M
		qio -c 'write -P 0x71 1000 5000' -c 'write -z 2M 4k' -c 'write -P 0x72 3M 64k' \
		    -c 'discard 3M 16k' $img
		readcheck $img "extended L2, cluster $cs${back:+, backing}"
		writecheck $img $((cs + 3)) "extended L2, cluster $cs${back:+, backing}"
		qemu-io -c 'write -P 0x73 5000 3000' $img >/dev/null || bad "qemu-io write $img"
		readcheck $img "extended L2 after qemu wrote ours, cluster $cs"
		qemu-img convert -O raw $img x.raw && qemu-io -f raw -c 'read -P 0x73 5000 3000' x.raw |
			grep -q '^read 3000/3000' || bad "qemu reads its pattern back from $img"
	done
done
# an extended-L2 image minikvm-img creates matches qemu-img's
if [ -x "$OLDPWD/build/minikvm-img" ] || [ -n "${IMG:-}" ]; then
	img=${IMG:-$OLDPWD/build/minikvm-img}
	"$img" create -q -f qcow2 -o extended_l2=on,cluster_size=32k ours-x.qcow2 5M
	qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=32k qemu-x.qcow2 5M
	qemu-img info ours-x.qcow2 | grep -q 'extended l2: true' || bad "ours-x: not extended L2"
	qemu-img check -q ours-x.qcow2 || bad "ours-x: qemu-img check"
	writecheck ours-x.qcow2 31 "extended L2 created by minikvm-img"
	# preallocated (clusters linked, subclusters unallocated: zeroes or the
	# backing file), alone and over a backing file: same contents as
	# qemu-img's, clean, and our writes into them check and compare clean
	# (that they go in place is in the unit test)
	for mode in metadata falloc full; do
		for back in "" "-b base.raw -F raw"; do
			what="extended L2, preallocation=$mode${back:+, backing}"
			"$img" create -q -f qcow2 -o extended_l2=on,cluster_size=64k,preallocation=$mode \
				$back ours-p.qcow2 2M || { bad "create $what"; continue; }
			qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k,preallocation=$mode \
				$back qemu-p.qcow2 2M
			qemu-img check -q ours-p.qcow2 || bad "qemu-img check: $what"
			qemu-img compare -q ours-p.qcow2 qemu-p.qcow2 && ok || bad "compare with qemu's: $what"
			writecheck ours-p.qcow2 41 "$what"
		done
	done
	"$img" create -q -f qcow2 -o preallocation=metadata -b base.raw -F raw np.qcow2 2M \
		2>/dev/null && bad "preallocation over a backing file without extended_l2 accepted" || ok
fi

# 7. a snapshot with VM state (qemu savevm): minikvm-img lists it like
#    qemu-img (VM SIZE, no ICOUNT), keeps it across its own snapshot
#    operations, and qemu can still loadvm it
if [ -n "${img:-}" ] && command -v qemu-system-x86_64 >/dev/null; then
	qemu-img create -q -f qcow2 vm.qcow2 16M
	printf 'savevm s1\nquit\n' | timeout 120 qemu-system-x86_64 -nodefaults -display none \
		-machine pc,accel=tcg -m 16 -S -drive file=vm.qcow2,if=virtio -monitor stdio \
		>/dev/null 2>&1
	if qemu-img snapshot -l vm.qcow2 | grep -q ' s1 .* KiB'; then
		diff <(qemu-img snapshot -l vm.qcow2) <("$img" snapshot -l vm.qcow2) >/dev/null &&
			ok || bad "snapshot -l with vm state differs from qemu-img's"
		diff <(qemu-img info --output=json vm.qcow2 | python3 -c \
			'import json,sys; print(json.load(sys.stdin)["snapshots"])') \
		     <("$img" info --output=json vm.qcow2 | python3 -c \
			'import json,sys; print(json.load(sys.stdin)["snapshots"])') >/dev/null &&
			ok || bad "info --output=json snapshots differ from qemu-img's"
		"$img" snapshot -c s2 vm.qcow2 && "$img" snapshot -a s1 vm.qcow2 &&
			"$img" snapshot -d s2 vm.qcow2 || bad "our snapshot ops on a vm-state image"
		qemu-img check -q vm.qcow2 || bad "qemu-img check after our snapshot ops"
		qemu-img snapshot -l vm.qcow2 | grep -q ' s1 .* KiB' || bad "vm state size lost"
		out=$(printf 'loadvm s1\nquit\n' | timeout 120 qemu-system-x86_64 -nodefaults \
			-display none -machine pc,accel=tcg -m 16 -S -drive file=vm.qcow2,if=virtio \
			-monitor stdio 2>&1)
		echo "$out" | grep -qi 'error' && bad "qemu loadvm after our snapshot ops: $out" || ok
	else
		echo "note: qemu savevm did not produce a vm-state snapshot; skipped"
	fi
fi

# 8. persistent dirty bitmaps: kept and marked in-use by our writes (as QEMU
#    marks them while it has the image open); qemu-img check stays clean
#    without the "program lacking bitmap support" warning
qemu-img create -q -f qcow2 bm.qcow2 8M
qemu-img bitmap --add bm.qcow2 b0 && qemu-img bitmap --add -g 128k bm.qcow2 b1
qio -c 'write -P 0x61 0 1M' -c 'write -P 0x62 5M 64k' bm.qcow2
writecheck bm.qcow2 17 "image with persistent dirty bitmaps"
qemu-img info bm.qcow2 2>&1 | grep -q 'lacking bitmap support' && bad "bitmaps: qemu warns"
[ "$(qemu-img info bm.qcow2 | grep -c 'in-use')" -eq 2 ] && ok ||
	bad "bitmaps not both marked in-use after our writes"
if [ -n "${img:-}" ]; then
	# info lists the bitmaps as qemu-img does (in-use after our writes; one
	# disabled: no flags), in JSON and in the human layout
	qemu-img bitmap --add -g 1M --disable bm.qcow2 b2
	bitmaps_json() { python3 -c 'import json,sys
print(json.load(sys.stdin)["format-specific"]["data"].get("bitmaps"))'; }
	theirs=$(qemu-img info --output=json bm.qcow2 | bitmaps_json)
	[ "$theirs" = "$("$img" info --output=json bm.qcow2 | bitmaps_json)" ] && ok ||
		bad "info --output=json bitmaps differ from qemu-img's: $theirs"
	echo "$theirs" | grep -q "'in-use', 'auto'" || bad "bitmaps test image: no in-use bitmap"
	diff <(qemu-img info bm.qcow2 | sed -n '/^Format specific/,$p') \
	     <("$img" info bm.qcow2 | sed -n '/^Format specific/,$p') >/dev/null && ok ||
		bad "info format-specific lines (bitmaps) differ from qemu-img's"
	"$img" check -q bm.qcow2 && ok || bad "minikvm-img check of an image with bitmaps"
	"$img" resize bm.qcow2 16M 2>/dev/null && bad "resize with bitmaps accepted" || ok
fi

# 9. info whole, JSON and human, as qemu-img prints it: v2 (compat, zlib,
#    refcount bits only) and v3 images, lazy refcounts and extended L2 on
#    and off, bitmaps, and an image left dirty (lazy refcounts, qemu-io
#    abort): info shows the dirty bit as it is on disk ("cleanly shut
#    down: no") and leaves it set; check of that image exits and reports
#    as qemu-img check, and -r all repairs it into the same file.
if [ -n "${img:-}" ]; then
	# (the JSON text exactly: an empty list, a disabled bitmap's flags,
	# spans two lines as in qemu-img's)
	same_info() {	# image, what
		diff <(qemu-img info --output=json "$1") <("$img" info --output=json "$1") &&
		diff <(qemu-img info "$1") <("$img" info "$1") && ok ||
			bad "info of $2 differs from qemu-img's"
	}
	qemu-img create -q -f qcow2 -o compat=0.10 i-v2.qcow2 1M
	qemu-img create -q -f qcow2 i-v3.qcow2 1M
	qemu-img create -q -f qcow2 -o lazy_refcounts=on,extended_l2=on i-lx.qcow2 1M
	qemu-img create -q -f qcow2 -o lazy_refcounts=on i-dirty.qcow2 1M
	( qemu-io -c 'write 0 64k' -c abort i-dirty.qcow2; true ) >/dev/null 2>&1
	qemu-img info --output=json i-dirty.qcow2 | grep -q '"dirty-flag": true' ||
		bad "qemu-io abort did not leave i-dirty.qcow2 dirty"
	same_info i-v2.qcow2 "a v2 image"
	same_info i-v3.qcow2 "a v3 image"
	same_info i-lx.qcow2 "an image with lazy refcounts and extended L2"
	same_info bm.qcow2 "an image with bitmaps"
	same_info i-dirty.qcow2 "a dirty image"
	"$img" info i-dirty.qcow2 | grep -qx 'cleanly shut down: no' && ok ||
		bad "info of a dirty image: no 'cleanly shut down: no'"
	qemu-img info --output=json i-dirty.qcow2 | grep -q '"dirty-flag": true' && ok ||
		bad "our info cleared the dirty bit"
	for mode in "" "-r leaks" "-r all"; do
		cp i-dirty.qcow2 q.qcow2 && cp i-dirty.qcow2 m.qcow2
		qemu-img check $mode q.qcow2 >q.out 2>q.err; qrc=$?
		"$img" check $mode m.qcow2 >m.out 2>m.err; mrc=$?
		[ $qrc = $mrc ] && ok || bad "check $mode of a dirty image: exit $mrc, qemu-img's $qrc"
		diff <(sed 's/^qemu-img: /PROG: /' q.err) <(sed 's/^minikvm-img: /PROG: /' m.err) && ok ||
			bad "check $mode of a dirty image: messages differ from qemu-img's"
		# (-r leaks fails: nothing on stdout, as qemu-img)
		diff q.out m.out && ok ||
			bad "check $mode of a dirty image: report differs from qemu-img's"
	done
	cmp -s q.qcow2 m.qcow2 && ok || bad "check -r all of a dirty image: not qemu-img's repair"
	qemu-img create -q -f qcow2 -o compression_type=zstd i-zstd.qcow2 1M
	same_info i-zstd.qcow2 "a zstd image"
fi

# 10. zstd compressed clusters (compression_type 1): a qemu-img convert -c
#     of random, zero and text data reads back identical and shows the
#     same info; our convert -c passes qemu-img check and compare; a frame
#     overwritten with garbage fails the read (exit 1, an error, no crash).
corrupt_first_compressed() {	# image: garbage over its first compressed cluster
	python3 - "$1" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
h = f.read(48)
cb = struct.unpack('>I', h[20:24])[0]
f.seek(struct.unpack('>Q', h[40:48])[0])
f.seek(struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00)
for e in struct.unpack('>%dQ' % (1 << (cb - 3)), f.read(1 << cb)):
    if e >> 62 & 1:
        f.seek(e & ((1 << (62 - (cb - 8))) - 1))
        f.write(b'\xa5' * 64)
        sys.exit(0)
sys.exit(1)
PY
}
if [ -n "${img:-}" ]; then
	head -c 300k /dev/urandom >z.raw
	head -c 400k /dev/zero >>z.raw
	seq 1 100000 | sed 's/$/ lines of some compressible text/' | head -c 700k >>z.raw
	head -c 1000 /dev/urandom >>z.raw
	qemu-img convert -q -c -O qcow2 -o compression_type=zstd z.raw zq.qcow2
	qemu-img check zq.qcow2 | grep -q 'compressed clusters' || bad "zq.qcow2: nothing compressed"
	"$img" convert -O raw zq.qcow2 zq.raw && qemu-img convert -O raw zq.qcow2 zq-ref.raw &&
		cmp -s zq.raw zq-ref.raw && cmp -s -n "$(stat -c %s z.raw)" z.raw zq.raw && ok ||
		bad "convert -O raw of qemu's zstd image differs"
	same_info zq.qcow2 "qemu's zstd image"
	"$img" convert -c -O qcow2 -o compression_type=zstd z.raw zm.qcow2 &&
		qemu-img check -q zm.qcow2 && qemu-img compare -q z.raw zm.qcow2 && ok ||
		bad "our zstd convert -c: not clean or not identical for qemu-img"
	qemu-img check zm.qcow2 | grep -q 'compressed clusters' || bad "zm.qcow2: nothing compressed"
	qemu-img info zm.qcow2 | grep -qx '    compression type: zstd' && ok ||
		bad "our zstd convert -c: qemu-img info does not show zstd"
	cp zq.qcow2 zbad.qcow2
	if corrupt_first_compressed zbad.qcow2; then
		"$img" convert -O raw zbad.qcow2 zbad.raw 2>zbad.err; rc=$?
		[ $rc = 1 ] && grep -q 'does not decompress' zbad.err &&
			grep -q 'Input/output error' zbad.err && ok ||
			bad "convert of a corrupt zstd cluster: exit $rc, $(cat zbad.err)"
	else
		bad "zq.qcow2: no compressed cluster in the first L2 table"
	fi
fi

echo "qcow2 interop: $passes passed, $fails failed"
[ $fails -eq 0 ] && echo "PASS test_qcow2_interop" || { echo "FAIL test_qcow2_interop"; exit 1; }
