#!/bin/bash
# minikvm-img's messages word for word as qemu-img 7.2's, with qemu-img as
# the oracle: for each case stdout, stderr (the program name read as
# qemu-img's) and the exit code must be equal. Covers the open errors of
# hostile cloop, qcow2 and qcow (v1) headers built here from good images
# (the cases both tools refuse, and odd ones QEMU accepts), commit and
# compare usage and errors, every command's usage errors (bad and missing
# options, file name counts, bad sizes, numbers, cache modes and -o
# lists, conflicting options), create's Formatting line and the errors
# reported after it, and raw images whose size is not a multiple
# of 512 (a disk rounded up to whole sectors: info, map, compare, convert,
# and writes past the end extending the file). Exit 0 = all passed.
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
IMGABS=$(realpath "$IMG")
T=$(mktemp -d /tmp/minikvm-messages-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

# same_as_qemu ARGS...: both tools on the same files in $T.
same_as_qemu() {
	local qo qe qr mo me mr
	qo=$(qemu-img "$@" 2>.q.err </dev/null); qr=$?
	mo=$("$IMGABS" "$@" 2>.m.err </dev/null); mr=$?
	qe=$(cat .q.err); me=$(sed 's/minikvm-img/qemu-img/g' .m.err)
	[ "$qo" = "$mo" ] && [ "$qe" = "$me" ] && [ "$qr" = "$mr" ] && return 0
	printf '  qemu-img (exit %s):\n%s\n%s\n  minikvm-img (exit %s):\n%s\n%s\n' \
		"$qr" "$qo" "$qe" "$mr" "$mo" "$me"
	return 1
}
expect() { check "$* as qemu-img" same_as_qemu "$@"; }

# same_after SETUP FILES ARGS...: for commands that change images: SETUP
# (a shell function) builds the images afresh in q/ and m/, then each tool
# runs there; output, exit code and the FILES (space-separated, may be
# empty) must be equal afterwards.
same_after() {
	local setup=$1 files=$2 qo qe qr mo me mr f
	shift 2
	rm -rf q m; mkdir q m
	(cd q && $setup </dev/null) && (cd m && $setup </dev/null) || { echo "  setup failed"; return 1; }
	qo=$(cd q && qemu-img "$@" 2>../.q.err </dev/null); qr=$?
	mo=$(cd m && "$IMGABS" "$@" 2>../.m.err </dev/null); mr=$?
	qe=$(cat .q.err); me=$(sed 's/minikvm-img/qemu-img/g' .m.err)
	if [ "$qo" != "$mo" ] || [ "$qe" != "$me" ] || [ "$qr" != "$mr" ]; then
		printf '  qemu-img (exit %s):\n%s\n%s\n  minikvm-img (exit %s):\n%s\n%s\n' \
			"$qr" "$qo" "$qe" "$mr" "$mo" "$me"
		return 1
	fi
	for f in $files; do
		cmp -s "q/$f" "m/$f" || { echo "  $f differs afterwards"; return 1; }
	done
}

# patch SRC DST PYTHON: DST is SRC changed by PYTHON, which edits the
# bytearray d with be32(off, v), be64(off, v), d[...] = ... or del d[...].
patch() {
	python3 - "$1" "$2" "$3" <<'EOF'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
def be32(off, v): d[off:off + 4] = struct.pack('>I', v)
def be64(off, v): d[off:off + 8] = struct.pack('>Q', v)
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(d)
EOF
}

# cases BASE EXT CMDS: reads "name python" lines; builds name.EXT from
# BASE and runs each command of CMDS (";"-separated, @ for the image).
cases() {
	local base=$1 ext=$2 cmds=$3 name code cmd
	while read -r name code; do
		[ -n "$name" ] || continue
		patch "$base" "$name.$ext" "$code" || { bad "building $name.$ext"; continue; }
		IFS=';' read -ra list <<< "$cmds"
		for cmd in "${list[@]}"; do
			# shellcheck disable=SC2086
			expect ${cmd//@/$name.$ext}
		done
	done
}

# ---- cloop: QEMU's open checks in its words ----
head -c 300000 /dev/urandom > cl.in
make_cloop cl.in a.cloop
# (info --output=json differs: minikvm-img's info.c adds "dirty-flag" for
# every format, qemu-img only for formats with bdrv_get_info, not cloop)
for args in "info a.cloop" "info -f cloop a.cloop" \
	    "map -f cloop a.cloop" "check -f cloop a.cloop" "resize -f cloop a.cloop 1M" \
	    "commit -f cloop a.cloop" "check -r all -f cloop a.cloop"; do
	# shellcheck disable=SC2086
	expect $args
done
cases a.cloop cloop "info -f cloop @;convert -f cloop -O raw @ out.raw" <<'EOF'
bs0 be32(128, 0)
bs1000 be32(128, 1000)
bsbig be32(128, 128 << 20)
nbhuge be32(132, 0xffffffff)
nbmany be32(132, 600000000 // 8)
nbmax be32(132, (512 << 20) // 8)
nbpast be32(132, 1000)
nonmono be64(144, 0)
bigblock be64(152, 1 << 40)
cut del d[160:]
EOF

# ---- qcow2: qcow2_do_open's checks in its words and order ----
qemu-img create -q -f qcow2 b3.qcow2 1M
qemu-img create -q -f qcow2 -o compat=0.10 b2.qcow2 1M
qemu-img create -q -f qcow2 -b b3.qcow2 -F qcow2 bk.qcow2
cases b3.qcow2 qcow2 "info -f qcow2 @;info @;convert -f qcow2 -O raw @ out.raw;map -f qcow2 @" <<'EOF'
ver0 be32(4, 0)
ver4 be32(4, 4)
cb8 be32(20, 8)
cb22 be32(20, 22)
hl50 be32(100, 50)
hlbig be32(100, 70000)
bfoff be64(8, 70000); be32(16, 4)
ctnobit d[104] = 1
ctbit0 be64(72, 8)
ct5 be64(72, 8); d[104] = 5
unknown be64(72, 1 << 20)
unknown2 be64(72, (1 << 20) | (1 << 40))
extl2small be64(72, 16); be32(20, 12)
rco7 be32(96, 7)
crypt3 be32(32, 3)
rt0 be32(56, 0)
rtbig be32(56, 200)
rtunaligned be64(48, 0x10008)
rthuge be64(48, 0x7fffffffffff0000)
snapmany be32(60, 70000)
snapunaligned be32(60, 1); be64(64, 0x10010)
l1big be32(36, 5000000)
l1unaligned be64(40, 0x30008)
l1small be32(36, 0)
sizehuge be64(24, 1 << 62)
sizemax be64(24, (1 << 64) - 512)
size2p56 be64(24, 1 << 56); be32(36, 1 << 21)
size1000 be64(24, 1000)
extbig be32(0x74, 0x10000)
trunc50 del d[50:]
trunc100 del d[100:]
EOF
cases b2.qcow2 qcow2 "info -f qcow2 @;info @" <<'EOF'
v2ver1 be32(4, 1)
v2cb be32(20, 30)
EOF
cases bk.qcow2 qcow2 "info -f qcow2 @;convert -f qcow2 -O raw @ out.raw" <<'EOF'
bflong be32(16, 2000)
bfempty be32(16, 0)
bfend be64(8, 65530); be32(16, 10)
bfmtlong be32(0x74, 20); d[0x78:0x90] = b"qcow2" + b"x" * 19; be32(0x90, 0)
EOF
cp b3.qcow2 corrupt.qcow2
patch b3.qcow2 corrupt.qcow2 "be64(72, 2)"
expect resize corrupt.qcow2 2M
expect check corrupt.qcow2

# ---- qcow (v1): qcow_open's checks in its words ----
qemu-img create -q -f qcow v1.qcow 1M
qemu-img create -q -f qcow -b b3.qcow2 -F qcow2 v1b.qcow
cases v1.qcow qcow "info -f qcow @;info @;convert -f qcow -O raw @ out.raw" <<'EOF'
qv2 be32(4, 2)
qv3 be32(4, 3)
qv7 be32(4, 7)
qsize0 be64(24, 0)
qsize1 be64(24, 1)
qcb8 d[32] = 8
qcb17 d[32] = 17
ql2b5 d[33] = 5
ql2b14 d[33] = 14
qcrypt2 be32(36, 2)
qhuge be64(24, (1 << 64) - 1000)
qbig be64(24, 1 << 62)
qsize1000 be64(24, 1000)
EOF
cases v1b.qcow qcow "info -f qcow @;convert -f qcow -O raw @ out.raw" <<'EOF'
qbflong be32(16, 2000)
qbfempty be32(16, 0)
EOF

# ---- commit ----
chain() {
	qemu-img create -q -f raw base.raw 1M
	qemu-io -f raw -c "write -P 0x11 0 1M" base.raw >/dev/null
	qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2
	qemu-io -f qcow2 -c "write -P 0x22 64k 64k" mid.qcow2 >/dev/null
	qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
	qemu-io -f qcow2 -c "write -P 0x33 100k 8k" top.qcow2 >/dev/null
	qemu-img create -q -f qcow2 lone.qcow2 1M
	qemu-img create -q -f raw small.raw 512K
	qemu-img create -q -f qcow2 -b small.raw -F raw big.qcow2 1M
	qemu-io -f qcow2 -c "write -P 0x44 900k 4k" big.qcow2 >/dev/null
	qemu-img create -q -f qcow v1.qcow 512K
	qemu-img create -q -f qcow2 -b v1.qcow -F qcow bigq.qcow2 1M
	qemu-io -f qcow2 -c "write -P 0x45 800k 4k" bigq.qcow2 >/dev/null
}
while IFS='|' read -r files args; do
	# shellcheck disable=SC2086
	check "commit $args as qemu-img" same_after chain "$files" commit $args
done <<'EOF'
|lone.qcow2
|-q lone.qcow2
|-f raw base.raw
|-b nope.raw top.qcow2
|-b top.qcow2 top.qcow2
|-f foo top.qcow2
|-t foo top.qcow2
|
|a b
|-x top.qcow2
|top.qcow2 -f
|-r abc top.qcow2
|-r -5 top.qcow2
|nope.qcow2
base.raw|-r 10M -d top.qcow2
base.raw|-b base.raw top.qcow2
mid.qcow2 base.raw|-d top.qcow2
small.raw|big.qcow2
small.raw|-d big.qcow2
|bigq.qcow2
EOF

# ---- compare ----
qemu-img create -q -f raw a.raw 1M
qemu-img create -q -f qcow2 b.qcow2 1M
qemu-img create -q -f raw c.raw 2M
qemu-io -f raw -c "write -P 1 0 64k" a.raw >/dev/null
qemu-img convert -O qcow2 a.raw aq.qcow2
qemu-img convert -c -O qcow2 a.raw ac.qcow2
qemu-img create -q -f qcow2 -b a.raw -F raw ov.qcow2
qemu-img create -q -f raw e.raw 1M
for args in "-f foo a.raw b.qcow2" "-F foo a.raw b.qcow2" "-f foo -F bar a.raw b.qcow2" \
	    "-f foo nope a.raw" "-f raw -F foo a.raw nope" "a.raw" "a.raw b.qcow2 c.raw" \
	    "-T foo a.raw b.qcow2" "-x a.raw b.qcow2" "-qx a.raw b.qcow2" "a.raw b.qcow2 -f" \
	    "nope a.raw" "a.raw nope" "a.raw b.qcow2" "e.raw b.qcow2" "a.raw c.raw" "e.raw c.raw" \
	    "-s a.raw c.raw" "-s a.raw aq.qcow2" "-s aq.qcow2 ac.qcow2" "-s ov.qcow2 a.raw" \
	    "-s e.raw b.qcow2" "-s b.qcow2 e.raw" "-s a.raw a.raw"; do
	# shellcheck disable=SC2086
	expect compare $args
done

# ---- raw images of a size that is not whole sectors ----
truncate -s 1000 odd.raw
printf 'abc' | dd of=odd.raw bs=1 seek=990 conv=notrunc status=none
truncate -s 1024 zero1024.raw
qemu-img create -q -f raw pat.raw 1K
qemu-io -f raw -c "write -P 0x5a 0 1K" pat.raw >/dev/null
for args in "info odd.raw" "info -f raw odd.raw" "info --output=json odd.raw" \
	    "map -f raw odd.raw" "map --output=json -f raw odd.raw" \
	    "compare odd.raw zero1024.raw" "compare -s odd.raw zero1024.raw" \
	    "compare -f raw -F raw odd.raw pat.raw" "measure -f raw -O qcow2 odd.raw" \
	    "check -f raw odd.raw"; do
	# shellcheck disable=SC2086
	expect $args
done
odd() { truncate -s 1000 odd.raw; printf 'abc' | dd of=odd.raw bs=1 seek=990 conv=notrunc status=none
	qemu-img create -q -f raw pat.raw 1K; qemu-io -f raw -c "write -P 0x5a 0 1K" pat.raw >/dev/null; }
check "convert of a 1000-byte raw image: 1024 bytes, as qemu-img" \
	same_after odd "out.raw" convert -f raw -O raw odd.raw out.raw
check "convert to qcow2 of a 1000-byte raw image: same virtual size as qemu-img" \
	bash -c "$(declare -f same_after odd); IMGABS='$IMGABS'
		same_after odd '' convert -f raw -O qcow2 odd.raw out.qcow2 &&
		[ \"\$(qemu-img info q/out.qcow2 | grep virtual)\" = \"\$(qemu-img info m/out.qcow2 | grep virtual)\" ]"
check "writing the sector past the end of a 1000-byte raw image extends it, as qemu-img" \
	same_after odd "odd.raw" convert -n -f raw -O raw pat.raw odd.raw
check "... to 1024 bytes" test "$(stat -c %s m/odd.raw)" -eq 1024

# ---- usage errors: qemu-img's getopt and argument errors ----
# Each command line runs in fresh copies of r.img (raw), q.qcow2 and
# t.qcow2 (over r.img); stdout, stderr (program name read as qemu-img's,
# "Try 'qemu-img --help' ..." included) and exit code must be qemu-img's.
# Lines are shell words (eval'd). Left out on purpose: help and version
# texts (ours), --object/--image-opts (refused: not implemented), -l
# (internal snapshots as a source), the Formatting line of qcow2 creation
# (qemu-img lists every default option), and bench runs.
usage_files() {
	qemu-img create -q -f raw r.img 1M
	qemu-img create -q -f qcow2 q.qcow2 1M
	qemu-img create -q -f qcow2 -b r.img -F raw t.qcow2
}
check "no arguments at all as qemu-img" same_after usage_files ""
while IFS= read -r line; do
	eval "set -- $line"
	check "usage: $line as qemu-img" same_after usage_files "" "$@"
done <<'EOF'
-x
--frob
info
frob
-T
-T foo info r.img
help
-q info r.img
info -x r.img
info -qx r.img
info -xq r.img
info --output
info --output=xml r.img
info -f
info r.img q.qcow2
info --frob r.img
info --backing-chain --output=json
info -U
create
create -x
create -f
create -o
create x.img 1Q
create x.img -- -5
create x.img 1M extra
create -f qcow2 x.img
create -f raw x.img
create -f foo x.img 1M
create -o foo=bar x.img 1M
create -f qcow2 -o foo=bar x.img 1M
create -o ,, x.img 1M
create -o size x.img
create -o size=abc x.img
create -f qcow2 -o lazy_refcounts=maybe x.img 1M
create -f qcow2 -b r.img x.img
create -F raw x.img 1M
create x.img 99E
create x.img 8E
create x.img 1.5k
create x.img 1k5
create x.img ""
create -q -f qcow2 x.img 1M
create -u -b r.img x.img
create -f qcow2 -u -b r.img x.img
create --image-opts x.img 1M
check
check -f
check -r foo r.img
check -r
check -T foo r.img
check --output=foo r.img
check r.img q.qcow2
check -x r.img
check --repair=all
check -q
commit
commit -t foo t.qcow2
commit -x
commit -f
commit a b
compare
compare r.img
compare -x r.img r.img
compare -T foo r.img r.img
compare -f
compare a b c
map
map --output
map --output=foo r.img
map --start-offset=abc r.img
map --start-offset=-1 r.img
map --max-length=abc r.img
map --max-length=1Q r.img
map --start-offset=1k r.img
map r.img q.qcow2
map -x r.img
convert
convert r.img
convert -x r.img o.img
convert -O
convert -O foo r.img o.img
convert -m 99 r.img o.img
convert -m 0 r.img o.img
convert -m abc r.img o.img
convert -S 100 r.img o.img
convert -S abc r.img o.img
convert -S -1 r.img o.img
convert -t foo r.img o.img
convert -T foo r.img o.img
convert -n -o cluster_size=4k -O qcow2 r.img o.img
convert -n -B r.img -O qcow2 r.img o.img
convert -B r.img r.img o.img
convert -F raw -O qcow2 r.img o.img
convert -c r.img o.img
convert -W r.img o.img
convert -o foo=bar -O qcow2 r.img o.img
convert -o ,, r.img o.img
convert -f foo r.img o.img
convert -r 1M r.img o.img
convert -C r.img o.img
convert -U r.img o.img
convert -n r.img nope.img
measure
measure --size 1G
measure -O qcow2
measure -O qcow2 --size abc
measure -O qcow2 --size 1G r.img
measure -O foo --size 1G
measure -O vmdk --size 1G
measure -O qcow2 r.img q.qcow2
measure --output=foo -O qcow2 --size 1G
measure -O qcow2 -o foo=bar --size 1G
measure -O qcow2 -o ,, --size 1G
rebase
rebase r.img
rebase -b r.img
rebase -b r.img r.img q.qcow2
rebase -x
rebase -t foo -b r.img t.qcow2
rebase -T foo -b r.img t.qcow2
rebase -u -b r.img q.qcow2
rebase -F raw t.qcow2
rebase -b
resize
resize r.img
resize r.img 1X
resize r.img +1X
resize r.img -- -1M
resize -x r.img 2M
resize r.img q.qcow2 2M
resize --preallocation=foo r.img 2M
resize --shrink r.img 512k
resize -f
resize r.img 1M 2M
resize r.img 99E
commit -r abc t.qcow2
compare -s
compare -qx r.img r.img
info --output=json -x
info -f foo r.img
map -f foo r.img
check -f foo r.img
snapshot
snapshot r.img
snapshot q.qcow2
info --format=raw r.img
create x.img -5
create -o a=1,, x.img 1M
create -o size=1M x.img 2M
create -f raw -o cluster_size=4k x.img 1M
create -f qcow2 -b q.qcow2 x.img
create -f qcow2 -u -b nope.img -F raw x.img
resize r.img 512k
resize -f raw r.img -- -2M
snapshot -d s r.img
rebase -u t.qcow2
convert -m 0x10 r.img o.img
convert -O qcow2 -B r.img r.img o.img
convert -F raw r.img o.img
convert -c -C r.img o.img
measure -f raw --size 1G
-T foo
info -V
-- info r.img
--trace
bench -d abc r.img
bench -s abc r.img
bench -s 1Q r.img
bench -S abc r.img
bench -o abc r.img
bench -i foo r.img
bench -t foo r.img
bench --pattern=abc r.img
bench --pattern=300 r.img
bench --flush-interval=abc r.img
bench --flush-interval=10 r.img
bench -c
bench
bench r.img r.img
bench -x r.img
bench -c abc r.img
bench -c -1 r.img
EOF

# ---- create: the Formatting line and the errors a format reports after it ----
mk_backings() { qemu-img create -q -f qcow2 b.qcow2 1M && qemu-img create -q -f vmdk b.vmdk 1M &&
	qemu-img create -q -f raw r.img 1M; }
while IFS= read -r args; do
	# shellcheck disable=SC2086
	check "create $args: output, errors and image as qemu-img" \
		same_after mk_backings "" create $args
done <<'EOF'
-f raw x.img 1M
-f raw -o preallocation=falloc x.img 1536
-f qcow2 x.img 1M
-f qcow2 -o cluster_size=4k,lazy_refcounts=on,compat=0.10 x.img 1M
-f qcow2 -b b.qcow2 -F qcow2 x.img
-f qcow2 -o preallocation=metadata,refcount_bits=8,extended_l2=on x.img 1M
-f qcow2 -o compat=1.1 x.img 1G
-f qcow2 -o size=2M x.img
-f qcow2 -o lazy_refcounts=true x.img 1M
-f qcow2 -o refcount_bits=0x10 x.img 1M
-f qcow2 -o compat=0.10,lazy_refcounts=on,refcount_bits=8 x.img 1M
-f qcow2 -o compat=0.10,extended_l2=on,refcount_bits=8 x.img 1M
-f qcow2 -o cluster_size=4k,extended_l2=on,preallocation=falloc -b b.qcow2 -F qcow2 x.img 1M
-f qcow2 -o compat=0.10,refcount_bits=3 x.img 1M
-f qcow2 -o backing_fmt=qcow2 x.img 1M
-f qcow2 -o compat=9 x.img 1M
-f qcow2 -o cluster_size=3000 x.img 1M
-f qcow2 -o preallocation=some x.img 1M
-f qcow2 -o refcount_bits=abc x.img 1M
-f qcow2 -o compression_type=foo x.img 1M
-f qcow2 -o compression_type=zstd x.img 1M
-f qcow2 -o compat=0.10,compression_type=zstd x.img 1M
-f qcow2 -o cluster_size=3,compat=0.9 x.img 1M
-f qcow2 -o refcount_bits=3,cluster_size=3 x.img 1M
-f qcow2 -o compression_type=foo,preallocation=bad,compat=0.9 x.img 1M
-f qcow2 -o refcount_bits=3,compression_type=foo x.img 1M
-f qcow2 -o preallocation=falloc -b b.qcow2 -F qcow2 x.img 1M
-f qcow x.img 1M
-f qcow -b r.img -F raw x.img
-f vmdk x.img 1M
-f vmdk -o subformat=monolithicFlat x.img 1M
-f vmdk -o subformat=monolithicSparse,backing_file=b.vmdk,backing_fmt=vmdk x.img 1M
EOF

echo "test_img_messages: $pass passed, $failn failed"
[ $failn -eq 0 ] || { echo "failed:$failed" | tr '|' '\n'; exit 1; }
