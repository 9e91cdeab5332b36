#!/bin/bash
# minikvm-img against qemu-img 7.2 as the oracle: every command's --help,
# one-line errors for bad input, create/info/map/measure agreeing with
# qemu-img for each format, convert round trips checked by
# `qemu-img compare`, check exit codes on clean/leaky/corrupt qcow2,
# resize, rebase, commit, snapshot and compare. Every check runs and is
# listed; a format that is not registered yet is skipped; the script
# fails if any check failed.
set -u
cd "$(dirname "$0")/../.." || exit 1
IMG=${IMG:-build/minikvm-img}
T=$(mktemp -d /tmp/test_img_cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0; failn=0; skipn=0; failed=""

ok() { pass=$((pass + 1)); echo "ok:   $*"; }
bad() { failn=$((failn + 1)); failed="$failed
    $*"; echo "FAIL: $*"; }
skip() { skipn=$((skipn + 1)); echo "skip: $*"; }
check() { local name=$1; shift; if "$@" >"$T/out" 2>&1; then ok "$name"; else
	bad "$name: $(tail -3 "$T/out" | tr '\n' ' ')"; fi; }
have_fmt() { "$IMG" --help | grep '^Supported formats:' | tr ' ' '\n' | grep -qx "$1"; }

[ -x "$IMG" ] || { echo "FAIL: $IMG not built"; exit 1; }

# --- help and version -------------------------------------------------------
check "--help" bash -c "'$IMG' --help | grep -q 'Command syntax'"
check "--version" bash -c "'$IMG' --version | grep -q 'minikvm-img version'"
for c in bench check commit compare convert create info map measure rebase snapshot; do
	check "$c --help" bash -c "'$IMG' $c --help | grep -q '^usage: minikvm-img $c'"
done
# as qemu-img, resize takes its last argument as the size before any option
check "resize --help" bash -c "'$IMG' resize --help x 1M | grep -q '^usage: minikvm-img resize'"

# --- bad command lines: qemu-img's wording on stderr, non-zero exit ---------------
# (usage errors add qemu-img's "Try '... --help' for more information" line;
# test_img_messages.sh compares each case with qemu-img itself)
expect_error() {
	local pattern=$1; shift
	local err status
	err=$("$IMG" "$@" 2>&1 >/dev/null); status=$?
	if [ $status -eq 0 ]; then bad "'$*' exited 0"; return; fi
	case "$err" in minikvm-img:*) ;; *) bad "'$*': no 'minikvm-img:' prefix: $err"; return;; esac
	if ! printf '%s' "$err" | head -1 | grep -qi -- "$pattern"; then bad "'$*': '$err' lacks '$pattern'"; return; fi
	if [ "$(printf '%s\n' "$err" | wc -l)" -gt 1 ] &&
	   ! printf '%s\n' "$err" | sed 1d | grep -qx -e "Try 'minikvm-img --help' for more information" \
		-e "minikvm-img: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes." \
		-e "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-" \
		-e "and exabytes, respectively."; then
		bad "'$*' printed unexpected lines: $err"; return
	fi
	ok "error: $* -> $(printf '%s' "$err" | head -1)"
}
expect_error "Command not found: frobnicate" frobnicate
expect_error "Not enough arguments"
expect_error "Invalid image size specified" create -f raw "$T/x.raw" 12Q
expect_error "unrecognized option '-5'" create -f raw "$T/x.raw" -5
expect_error "Invalid image size specified" create -f raw "$T/x.raw" -- -5
expect_error "Image creation needs a size parameter" create -f raw "$T/x.raw"
expect_error "Unknown file format" create -f nosuchfmt "$T/x.raw" 1M
expect_error "Cluster size must be a power of two" create -f qcow2 -o cluster_size=3000 "$T/x.qcow2" 1M
expect_error "Parameter 'preallocation' does not accept value 'maybe'" create -f qcow2 -o preallocation=maybe "$T/x.qcow2" 1M
expect_error "Invalid parameter 'frob'" create -f qcow2 -o frob=1 "$T/x.qcow2" 1M
expect_error "Invalid option list" create -f qcow2 -o , "$T/x.qcow2" 1M
expect_error "unrecognized option '--frobnicate'" info --frobnicate "$T/x.raw"
expect_error "unrecognized option '-Z'" info -Z "$T/x.raw"
expect_error "missing argument for option '-f'" info -f
expect_error "missing argument for option '--output'" map --output
expect_error "--output must be used with human or json" info --output=xml "$T/x.raw"
expect_error "nonexist" info "$T/nonexist.qcow2"
expect_error "Expecting one image file name" info
expect_error "--object is not supported" info --object secret,id=s0,data=x "$T/x.raw"
expect_error "--image-opts is not supported" info --image-opts "$T/x.raw"
expect_error "Must specify image file name" convert "$T/only-one"
expect_error "Unknown option value for -r" check -r some "$T/x.raw"
expect_error "Invalid number of coroutines" convert -m 99 a b
expect_error "Invalid buffer size for sparse output" convert -S 100 a b
expect_error "-o has no effect when skipping image creation" convert -n -o compat=v3 a b
expect_error "Invalid queue depth specified" bench -d x x
expect_error "queue depth must be from 1" bench -d 0 x
expect_error "Invalid aio option" bench -i carrier-pigeon x
expect_error "Invalid cache mode" bench -t sometimes x
expect_error "Parameter 'size' expects" resize "$T/x.raw" 1X
expect_error "Not enough arguments" resize "$T/x.raw"
expect_error "Either --size" measure
expect_error "support size measurement" measure -O vmdk --size 1G
expect_error "Must specify backing file (-b) or use unsafe mode (-u)" rebase "$T/x.raw"
expect_error "Cannot mix" snapshot -l -c s "$T/x.raw"
err=$("$IMG" compare a 2>&1 >/dev/null); st=$?
[ $st -eq 1 ] && ok "compare usage error exits 1 (as qemu-img)" || bad "compare usage error exited $st"

# --- create + info against qemu-img info ------------------------------------------
# info_agree IMAGE: virtual-size, format, backing file, cluster size and
# snapshot names must match qemu-img's JSON.
info_agree() {
	"$IMG" info --output=json "$1" > "$T/ours.json" || return 1
	qemu-img info --output=json "$1" > "$T/theirs.json" || return 1
	python3 - "$T/ours.json" "$T/theirs.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
keys = ["virtual-size", "format", "backing-filename", "backing-filename-format",
        "cluster-size", "filename", "full-backing-filename"]
bad = [k for k in keys if a.get(k) != b.get(k)]
sa = [s["name"] for s in a.get("snapshots", [])]; sb = [s["name"] for s in b.get("snapshots", [])]
if sa != sb: bad.append("snapshots %s vs %s" % (sa, sb))
fa = a.get("format-specific", {}).get("data", {}); fb = b.get("format-specific", {}).get("data", {})
for k in ["compat", "lazy-refcounts", "refcount-bits", "corrupt", "extended-l2"]:
    if k in fb and fa.get(k) != fb.get(k): bad.append("format-specific %s %r vs %r" % (k, fa.get(k), fb.get(k)))
if bad:
    print("differ:", bad, "ours:", json.dumps(a), "qemu:", json.dumps(b)); sys.exit(1)
PY
}

for spec in "raw::64M" "qcow2::64M" "qcow2:-o cluster_size=4096,lazy_refcounts=on:10M" \
	    "qcow2:-o compat=0.10:3G" "qcow2:-o refcount_bits=8:1G" "qcow:cow-ignored:32M" \
	    "vmdk::100M" "vmdk:-o subformat=monolithicFlat:20M"; do
	fmt=${spec%%:*}; rest=${spec#*:}; opts=${rest%:*}; size=${rest##*:}
	[ "$opts" = cow-ignored ] && opts=""
	f="$T/c-$fmt-$RANDOM.$fmt"
	if ! have_fmt "$fmt"; then skip "create $fmt $opts: format not registered"; continue; fi
	# shellcheck disable=SC2086
	if ! "$IMG" create -q -f "$fmt" $opts "$f" "$size" > "$T/out" 2>&1; then
		bad "create -f $fmt $opts $size: $(cat "$T/out")"; continue; fi
	check "create -f $fmt $opts $size: qemu-img info agrees" info_agree "$f"
	[ "$fmt" = qcow2 ] && check "create -f $fmt $opts: qemu-img check clean" qemu-img check -q "$f"
done

# qemu-made images read by us
qemu-img create -q -f qcow2 -o cluster_size=65536 "$T/q.qcow2" 64M
qemu-io -c 'write -P 0x11 0 1M' -c 'write -P 0x22 10M 64k' -c 'write -z 20M 64k' "$T/q.qcow2" >/dev/null
qemu-img snapshot -c snap1 "$T/q.qcow2"
qemu-img create -q -f raw "$T/base.raw" 64M
qemu-io -f raw -c 'write -P 0x33 0 512k' -c 'write -P 0x44 5M 64k' "$T/base.raw" >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw "$T/top.qcow2"
qemu-io -c 'write -P 0x55 256k 128k' "$T/top.qcow2" >/dev/null
check "info on a qemu-made qcow2 with a snapshot" info_agree "$T/q.qcow2"
check "info on a qemu-made qcow2 with a raw backing file" info_agree "$T/top.qcow2"
check "info on a raw image" info_agree "$T/base.raw"
check "info --backing-chain lists both" bash -c \
	"'$IMG' info --backing-chain --output=json '$T/top.qcow2' | python3 -c 'import json,sys; a=json.load(sys.stdin); assert [i[\"format\"] for i in a]==[\"qcow2\",\"raw\"], a'"
check "info human has qemu's lines" bash -c \
	"'$IMG' info '$T/q.qcow2' | grep -q '^virtual size: 64 MiB (67108864 bytes)$'"

# info --output=json: the top-level keys in qemu-img 7.2's order (its QDict
# hash order) and, where every value agrees, the whole JSON and human text
# (for vmdk, actual-size/disk size sum the descriptor and every extent file)
info_keys() { python3 -c 'import json,sys; print(list(json.load(sys.stdin)))'; }
info_key_order() {
	diff <("$IMG" info --output=json "$1" | info_keys) <(qemu-img info --output=json "$1" | info_keys)
}
info_identical() {
	diff <("$IMG" info --output=json "$1") <(qemu-img info --output=json "$1") &&
		diff <("$IMG" info "$1") <(qemu-img info "$1")
}
qemu-img create -q -f qcow2 -o compat=0.10 -b q.qcow2 -F qcow2 "$T/v2.qcow2"
qemu-img snapshot -c s1 "$T/v2.qcow2"
qemu-img create -q -f qcow "$T/k.qcow" 8M
qemu-io -f qcow -c 'write -P 7 64k 64k' "$T/k.qcow" >/dev/null
qemu-img create -q -f qcow -b k.qcow -F qcow "$T/kb.qcow"
check "info json key order: qcow2 v2 with backing and snapshot" info_key_order "$T/v2.qcow2"
for f in base.raw q.qcow2 top.qcow2 k.qcow kb.qcow; do
	check "info json key order: $f" info_key_order "$T/$f"
	check "info json and human identical to qemu-img: $f" info_identical "$T/$f"
done
# an empty list (a disabled bitmap's flags) is "[" and "]" on two lines in
# qemu-img's JSON; brackets inside strings (a file name) stay as they are
qemu-img create -q -f qcow2 "$T/b[]{}\"\\.qcow2" 8M
qemu-img bitmap --add -g 1M --disable "$T/b[]{}\"\\.qcow2" off
qemu-img bitmap --add "$T/b[]{}\"\\.qcow2" on
check "info json of an empty list and of brackets in a name identical to qemu-img" \
	info_identical "$T/b[]{}\"\\.qcow2"
check "info --backing-chain json with an empty list identical to qemu-img" bash -c \
	"diff <('$IMG' info --backing-chain --output=json '$T/b[]{}\"\\.qcow2') \
	      <(qemu-img info --backing-chain --output=json '$T/b[]{}\"\\.qcow2')"
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat \
	   streamOptimized; do
	qemu-img create -q -f vmdk -o subformat=$sub "$T/i-$sub.vmdk" 5G
	qemu-io -f vmdk -c 'write -P 1 0 1M' -c 'write -P 2 3G 1M' "$T/i-$sub.vmdk" >/dev/null
	check "info json key order: vmdk $sub" info_key_order "$T/i-$sub.vmdk"
	check "info identical to qemu-img (actual-size of all extents): vmdk $sub" \
		info_identical "$T/i-$sub.vmdk"
done
check "create -b without size takes the backing size" bash -c \
	"'$IMG' create -q -f qcow2 -b base.raw -F raw '$T/top2.qcow2' && qemu-img info --output=json '$T/top2.qcow2' | grep -q '\"virtual-size\": 67108864'"

# --- map against qemu-img map --output=json ------------------------------------------
map_agree() {
	"$IMG" map --output=json "$1" > "$T/ours.map" || return 1
	qemu-img map --output=json "$1" > "$T/theirs.map" || return 1
	python3 - "$T/ours.map" "$T/theirs.map" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
if a != b:
    print("ours:", a); print("qemu:", b); sys.exit(1)
PY
}
qemu-img create -q -f raw "$T/sparse.raw" 16M
qemu-io -f raw -c 'write -P 1 1M 64k' -c 'write -P 2 8M 1M' "$T/sparse.raw" >/dev/null
check "map json: sparse raw" map_agree "$T/sparse.raw"
check "map json: qcow2" map_agree "$T/q.qcow2"
check "map json: qcow2 over raw backing" map_agree "$T/top.qcow2"
check "map human: same data lines as qemu-img" bash -c \
	"diff <('$IMG' map '$T/top.qcow2' | sed 's|$T/||') <(qemu-img map '$T/top.qcow2' | sed 's|$T/||')"

# --- map of preallocated qcow2: host offsets of zero/unallocated ranges --------
# qemu-img reports the "offset" of clusters that are still allocated while
# they read as zeroes: data clusters over holes of the file (metadata
# preallocation), allocated-zero clusters, extended-L2 clusters with
# unallocated subclusters. Images are made without qemu-io: data and zero
# regions come from dd, allocated-zero clusters from our commit of an
# all-allocated top (-S 0) into a preallocated base.
map_human_agree() {
	diff <("$IMG" map "$1" 2>&1 | sed "s|$T/||") <(qemu-img map "$1" 2>&1 | sed "s|$T/||")
}
head -c 300k /dev/urandom > "$T/pz.raw"
truncate -s 4M "$T/pz.raw"
dd if=/dev/urandom of="$T/pz.raw" bs=64k seek=20 count=3 conv=notrunc status=none
for o in preallocation=metadata preallocation=metadata,extended_l2=on,cluster_size=64k \
	 extended_l2=on compat=0.10,preallocation=metadata; do
	rm -f "$T/pe.qcow2" "$T/pc.qcow2" "$T/pb.qcow2" "$T/pt.qcow2"
	qemu-img create -q -f qcow2 -o $o "$T/pe.qcow2" 4M
	check "map json: empty qcow2 -o $o" map_agree "$T/pe.qcow2"
	qemu-img convert -O qcow2 -o $o "$T/pz.raw" "$T/pc.qcow2"
	check "map json: converted qcow2 -o $o" map_agree "$T/pc.qcow2"
	check "map human: converted qcow2 -o $o" map_human_agree "$T/pc.qcow2"
	# allocated-zero clusters need preallocated clusters and v3 zero flags
	case $o in preallocation=metadata*) ;; *) continue;; esac
	qemu-img create -q -f qcow2 -o $o "$T/pb.qcow2" 4M
	check "allocated-zero clusters via commit -o $o" bash -c "set -e
		'$IMG' convert -S 0 -O qcow2 '$T/pz.raw' '$T/pt.qcow2'
		'$IMG' rebase -u -b pb.qcow2 -F qcow2 '$T/pt.qcow2'
		'$IMG' commit -q '$T/pt.qcow2'
		qemu-img map --output=json '$T/pb.qcow2' | grep -q '\"zero\": true, \"data\": false, \"offset\"'
		qemu-img compare -q -f qcow2 -F raw '$T/pb.qcow2' '$T/pz.raw'"
	check "map json: allocated-zero clusters -o $o" map_agree "$T/pb.qcow2"
	check "map human: allocated-zero clusters -o $o" map_human_agree "$T/pb.qcow2"
done
qemu-img convert -O qcow2 -o preallocation=metadata "$T/pz.raw" "$T/pxb.qcow2"
qemu-img create -q -f qcow2 -o preallocation=metadata,extended_l2=on -b pxb.qcow2 -F qcow2 \
	"$T/px.qcow2" 6M
check "map json: preallocated extended-L2 top over a shorter base" map_agree "$T/px.qcow2"
check "map json: same with -s/-l (short --start-offset/--max-length)" bash -c "set -e
	'$IMG' map --output=json -s 1M -l 4M '$T/px.qcow2' > '$T/pxo.map'
	qemu-img map --output=json -s 1M -l 4M '$T/px.qcow2' > '$T/pxq.map'
	grep -q '\"depth\": 1' '$T/pxq.map' && diff '$T/pxo.map' '$T/pxq.map'"
qemu-img convert -c -O qcow2 "$T/pz.raw" "$T/pcc.qcow2"
check "map json: compressed clusters (no offset)" map_agree "$T/pcc.qcow2"
check "map human: compressed clusters refused like qemu-img" bash -c "
	! '$IMG' map '$T/pcc.qcow2' >/dev/null 2>'$T/pcc.err' &&
	! qemu-img map '$T/pcc.qcow2' >/dev/null 2>/dev/null &&
	[ \$(wc -l < '$T/pcc.err') -eq 1 ] && grep -q 'compressed clusters' '$T/pcc.err'"
check "create -o help: metadata preallocation for qcow2 only" bash -c "
	'$IMG' create -f qcow2 -o help | grep -q 'allowed values: off, metadata, falloc, full' &&
	qemu-img create -f qcow2 -o help | grep -q 'allowed values: off, metadata, falloc, full' &&
	'$IMG' create -f raw -o help | grep -q 'allowed values: off, falloc, full'"

# --- measure against qemu-img measure -----------------------------------------
measure_agree() {
	local a b
	a=$("$IMG" measure --output=json "$@" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["required"], d["fully-allocated"])') || return 1
	b=$(qemu-img measure --output=json "$@" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["required"], d["fully-allocated"])') || return 1
	[ "$a" = "$b" ] || { echo "ours $a qemu $b"; return 1; }
}
check "measure --size 1G -O qcow2" measure_agree --size 1G -O qcow2
check "measure --size 100M -O qcow2 cluster_size=4k" measure_agree --size 100M -O qcow2 -o cluster_size=4k
check "measure --size 1000 -O raw" measure_agree --size 1000 -O raw
check "measure -O qcow2 qcow2 file" measure_agree -O qcow2 "$T/q.qcow2"
check "measure -O qcow2 sparse raw" measure_agree -O qcow2 -f raw "$T/sparse.raw"
check "measure -O raw qcow2" measure_agree -O raw "$T/q.qcow2"

# --- convert round trips, checked by qemu-img compare -----------------------------
convert_rt() {	# convert_rt SRC OUTFMT [flags...]
	local src=$1 ofmt=$2; shift 2
	local out="$T/conv-$RANDOM.$ofmt"
	"$IMG" convert -O "$ofmt" "$@" "$src" "$out" || return 1
	qemu-img compare "$src" "$out" || return 1
	if [ "$ofmt" = qcow2 ]; then qemu-img check -q "$out" || return 1; fi
}
check "convert qcow2 -> raw" convert_rt "$T/q.qcow2" raw
check "convert raw -> qcow2" convert_rt "$T/sparse.raw" qcow2
check "convert raw -> qcow2 -m 16 -W" convert_rt "$T/sparse.raw" qcow2 -m 16 -W
check "convert raw -> qcow2 -m 1 -p" convert_rt "$T/sparse.raw" qcow2 -m 1 -p
check "convert qcow2+backing -> qcow2 (flattened)" convert_rt "$T/top.qcow2" qcow2
check "convert raw -> qcow2 -c (compressed)" convert_rt "$T/sparse.raw" qcow2 -c
check "convert qcow2 -> raw -S 0 (fully allocated)" bash -c \
	"'$IMG' convert -S 0 -O raw '$T/q.qcow2' '$T/full.raw' && qemu-img compare '$T/q.qcow2' '$T/full.raw' && [ \$(du -k '$T/full.raw' | cut -f1) -ge 65536 ]"
check "convert raw -> raw keeps holes" bash -c \
	"'$IMG' convert -O raw '$T/sparse.raw' '$T/sp2.raw' && qemu-img compare '$T/sparse.raw' '$T/sp2.raw' && [ \$(du -k '$T/sp2.raw' | cut -f1) -le 2048 ]"
check "convert -c output has compressed clusters" bash -c \
	"'$IMG' convert -c -O qcow2 '$T/sparse.raw' '$T/cmp.qcow2' && qemu-img check '$T/cmp.qcow2' | grep -qv ' 0.00% compressed'"
check "convert -n into an existing image" bash -c \
	"qemu-img create -q -f qcow2 '$T/pre.qcow2' 64M && '$IMG' convert -n -O qcow2 '$T/q.qcow2' '$T/pre.qcow2' && qemu-img compare '$T/q.qcow2' '$T/pre.qcow2'"
check "convert -B keeps a backing file" bash -c \
	"'$IMG' convert -O qcow2 -B base.raw -F raw '$T/top.qcow2' '$T/rebased.qcow2' && qemu-img compare '$T/top.qcow2' '$T/rebased.qcow2' && qemu-img info '$T/rebased.qcow2' | grep -q 'backing file: base.raw'"
for fmt in qcow vmdk; do
	if have_fmt $fmt; then check "convert raw -> $fmt" convert_rt "$T/sparse.raw" $fmt
	else skip "convert raw -> $fmt: format not registered"; fi
done

# --- check exit codes -------------------------------------------------------------
# A leak: clear the L2 entry of guest cluster 0, so its data cluster keeps
# refcount 1 with no reference. A corruption: make guest cluster 1 point at
# the same host cluster as cluster 0 (refcount 1, two references).
patch_l2() {	# patch_l2 FILE leak|corrupt
	python3 - "$1" "$2" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b"); h = f.read(104)
l1_off = struct.unpack(">Q", h[40:48])[0]
f.seek(l1_off); l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2); e0 = f.read(8)
if sys.argv[2] == "leak":
    f.seek(l2); f.write(b"\0" * 8)
else:
    f.seek(l2 + 8); f.write(e0)
PY
}
qemu-img create -q -f qcow2 "$T/leak.qcow2" 16M
qemu-io -c 'write -P 7 0 128k' "$T/leak.qcow2" >/dev/null
cp "$T/leak.qcow2" "$T/clean.qcow2"
cp "$T/leak.qcow2" "$T/corrupt.qcow2"
patch_l2 "$T/leak.qcow2" leak
patch_l2 "$T/corrupt.qcow2" corrupt
qemu-img check -q "$T/leak.qcow2"; [ $? -eq 3 ] || echo "note: qemu-img does not see the leak"
expect_rc() { local want=$1; shift; "$@" >"$T/out" 2>&1; local st=$?
	[ $st -eq "$want" ] || { echo "exit $st, want $want: $(cat "$T/out")"; return 1; }; }
check "check clean qcow2 exits 0" expect_rc 0 "$IMG" check "$T/clean.qcow2"
check "check leaky qcow2 exits 3" expect_rc 3 "$IMG" check "$T/leak.qcow2"
check "check corrupt qcow2 exits 2" expect_rc 2 "$IMG" check "$T/corrupt.qcow2"
check "check raw exits 63" expect_rc 63 "$IMG" check -f raw "$T/base.raw"
check "check --output=json fields match qemu-img" bash -c \
	"diff <('$IMG' check --output=json '$T/leak.qcow2' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sorted((k,v) for k,v in d.items() if k!=\"filename\"))') \
	      <(qemu-img check --output=json '$T/leak.qcow2' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sorted((k,v) for k,v in d.items() if k!=\"filename\"))')"
check "check -r leaks repairs, then qemu-img check is clean" bash -c \
	"'$IMG' check -r leaks '$T/leak.qcow2' >/dev/null; qemu-img check -q '$T/leak.qcow2'"

# check_same IMAGE ARGS...: check of a copy of IMAGE by us and by qemu-img
# (same file name, in two directories): identical stdout, exit code and
# stderr (the program name aside), so JSON key order and the lone
# "Check failed: ..." line of a failed check are qemu-img's.
check_same() {
	local img=$1 d; shift
	for d in cq cm; do mkdir -p "$T/$d"; cp "$img" "$T/$d/i.qcow2"; done
	(cd "$T/cq" && qemu-img check "$@" i.qcow2 >out 2>err; echo $? >rc)
	(cd "$T/cm" && "$OLDPWD/$IMG" check "$@" i.qcow2 >out 2>err; echo $? >rc)
	sed -i 's/^qemu-img: /PROG: /' "$T/cq/err"; sed -i 's/^minikvm-img: /PROG: /' "$T/cm/err"
	for f in rc out err; do
		diff "$T/cq/$f" "$T/cm/$f" || { echo "$f differs (qemu-img <, ours >)"; return 1; }
	done
}
# leaks and corruptions at once: guest cluster 1 unmapped (leak), guest
# cluster 2 pointing at guest cluster 0's host cluster (corruption)
cp "$T/clean.qcow2" "$T/both.qcow2"
python3 - "$T/both.qcow2" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b"); h = f.read(104)
f.seek(struct.unpack(">Q", h[40:48])[0]); l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2); e0 = f.read(8); f.seek(l2 + 8); f.write(b"\0" * 8); f.seek(l2 + 16); f.write(e0)
PY
qemu-img create -q -f qcow2 "$T/empty.qcow2" 16M
qemu-img create -q -f qcow2 "$T/frag.qcow2" 16M
qemu-io -c 'write 4M 64k' -c 'write 0 64k' -c 'write 8M 64k' -c 'write 64k 64k' \
	"$T/frag.qcow2" >/dev/null
# refcounts that need a rebuild (lazy refcounts, killed writer): -r leaks
# cannot repair them and the check fails
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$T/rebuild.qcow2" 16M
( qemu-io -c 'write 0 64k' -c abort "$T/rebuild.qcow2"; true ) >/dev/null 2>&1
for i in clean empty frag leak corrupt both rebuild; do
	for mode in "" "-r leaks" "-r all"; do
		for out in "" "--output=json" "-q"; do
			# shellcheck disable=SC2086
			check "check $mode $out of a $i qcow2: output and exit code as qemu-img" \
				check_same "$T/$i.qcow2" $mode $out
		done
	done
done

# Corrupt layouts, each patched into a qemu-made image (python): the check
# of every mode and output as qemu-img's (check_same), and the image a
# repair leaves byte for byte qemu-img's (repair_same).
repair_same() {	# repair_same IMAGE MODE...
	local img=$1; shift
	for d in rq rm; do mkdir -p "$T/$d"; cp "$img" "$T/$d/i.qcow2"; done
	(cd "$T/rq" && qemu-img check "$@" i.qcow2 >/dev/null 2>&1)
	(cd "$T/rm" && "$OLDPWD/$IMG" check "$@" i.qcow2 >/dev/null 2>&1)
	cmp "$T/rq/i.qcow2" "$T/rm/i.qcow2"
}
# patch_q2 FILE CASE: one corruption (see the cases below)
patch_q2() {
	python3 - "$1" "$2" <<'PY'
import os, struct, sys
f = open(sys.argv[1], "r+b"); case = sys.argv[2]
h = f.read(104); M = 0x00fffffffffffe00
cs = 1 << struct.unpack(">I", h[20:24])[0]
l1_off, rt_off = struct.unpack(">Q", h[40:48])[0], struct.unpack(">Q", h[48:56])[0]
snap_off = struct.unpack(">Q", h[64:72])[0]
ext_l2 = struct.unpack(">I", h[4:8])[0] >= 3 and struct.unpack(">Q", h[72:80])[0] & 16
esz = 16 if ext_l2 else 8
size = os.fstat(f.fileno()).st_size
def r64(o): f.seek(o); return struct.unpack(">Q", f.read(8))[0]
def w64(o, v): f.seek(o); f.write(struct.pack(">Q", v))
l2 = lambda i: r64(l1_off + 8 * i) & M
def set_rc16(k, v): f.seek((r64(rt_off) & M) + 2 * k); f.write(struct.pack(">H", v))
COPIED, COMPRESSED = 1 << 63, 1 << 62
if case == "beyond-eof":	# a data cluster past the end of the file
    w64(l2(0) + 40, (size + 10 * cs) | COPIED)
elif case == "l2-unaligned":	# an L1 entry not cluster aligned
    w64(l1_off, r64(l1_off) + 512)
elif case == "refblock-outside":	# a refcount block past the end of the file
    w64(rt_off + 8, 100 * cs)
elif case == "refblock-unaligned":
    w64(rt_off, r64(rt_off) + 512)
elif case == "reftable-reserved":	# reserved bits in a refcount table entry
    w64(rt_off, r64(rt_off) | 4)
elif case == "refblock-shared":	# a data cluster on the refcount block
    w64(l2(0) + 24, r64(rt_off) | COPIED)
elif case == "l1-reserved":
    w64(l1_off, r64(l1_off) | 2)
elif case == "l2-reserved":
    w64(l2(0), r64(l2(0)) | 4)
elif case == "data-unaligned":
    w64(l2(0), r64(l2(0)) + 512)
elif case == "zero-unaligned":	# a preallocated zero cluster, misaligned
    w64(l2(0), (r64(l2(0)) + 512) | 1)
elif case == "leak-past-end":	# a refcount for a cluster past the end
    set_rc16(size // cs + 3, 1)
elif case == "copied-l1":
    w64(l1_off, r64(l1_off) & ~COPIED)
elif case == "copied-l2":
    w64(l2(0), r64(l2(0)) & ~COPIED)
elif case == "compressed-copied":
    w64(l2(0), r64(l2(0)) | COPIED)
elif case == "compressed-beyond-eof":
    w64(l2(0) + 8, COMPRESSED | (size + 4 * cs))
elif case == "extl2-bitmap":	# allocated and zero bits of one subcluster both set
    b = r64(l2(0) + 8); w64(l2(0) + 8, b | (b << 32))
    w64(l2(0) + 7 * esz + 8, 0xff)	# an unallocated cluster with allocated subclusters
elif case == "overflow":	# refcount_bits=1: a second reference overflows
    w64(l2(0) + esz, r64(l2(0)))
elif case == "snapshot-shared-dup":	# in an L2 table the active state shares
    sl1 = r64(snap_off); sl2 = r64(sl1) & M; w64(sl2 + 8, r64(sl2))
elif case == "refcount0":	# a used cluster without refcount: rebuild
    set_rc16((r64(l2(0)) & M) // cs, 0)
elif case == "truncated":
    f.truncate(size - cs)
else:
    sys.exit("unknown case " + case)
PY
}
qemu-img create -q -f raw "$T/cz.raw" 4M
qemu-io -f raw -c 'write -P 1 0 1M' -c 'write -P 2 2M 128k' "$T/cz.raw" >/dev/null
dd if=/dev/urandom of="$T/cz.raw" bs=64k seek=50 count=2 conv=notrunc status=none
qemu-img convert -c -O qcow2 "$T/cz.raw" "$T/compressed.qcow2"
cp "$T/clean.qcow2" "$T/zeroalloc.qcow2"	# a preallocated zero cluster
qemu-io -c 'write -z 0 64k' "$T/zeroalloc.qcow2" >/dev/null
qemu-img create -q -f qcow2 -o extended_l2=on "$T/extl2.qcow2" 16M
qemu-io -c 'write -P 1 0 64k' -c 'write -P 2 200k 4k' "$T/extl2.qcow2" >/dev/null
qemu-img create -q -f qcow2 -o refcount_bits=1 "$T/rc1.qcow2" 16M
qemu-io -c 'write -P 1 0 192k' "$T/rc1.qcow2" >/dev/null
cp "$T/clean.qcow2" "$T/snap.qcow2"
qemu-img snapshot -c s1 "$T/snap.qcow2"; qemu-img snapshot -c s2 "$T/snap.qcow2"
qemu-io -c 'write -P 9 64k 64k' "$T/snap.qcow2" >/dev/null
# 512-byte clusters, 12M of data: a rebuild needs a refcount table of
# several clusters, placed as qemu places it
qemu-img create -q -f qcow2 -o cluster_size=512 "$T/small.qcow2" 64M
qemu-io -c 'write -P 1 0 12M' "$T/small.qcow2" >/dev/null
corrupt_cases="clean:beyond-eof clean:l2-unaligned clean:refblock-outside
	clean:refblock-unaligned clean:reftable-reserved clean:refblock-shared clean:l1-reserved
	clean:l2-reserved clean:data-unaligned clean:zero-unaligned clean:leak-past-end
	clean:copied-l1 clean:copied-l2 clean:truncated compressed:compressed-copied
	compressed:compressed-beyond-eof extl2:extl2-bitmap rc1:overflow
	snap:snapshot-shared-dup small:refcount0"
for spec in compressed zeroalloc extl2 $corrupt_cases; do
	base=${spec%%:*}; case=${spec#*:}
	img="$T/$base.qcow2"
	if [ "$case" != "$spec" ]; then
		img="$T/$base-$case.qcow2"; cp "$T/$base.qcow2" "$img"; patch_q2 "$img" "$case"
	fi
	for mode in "" "-r leaks" "-r all"; do
		for out in "" "--output=json" "-q"; do
			# shellcheck disable=SC2086
			check "check $mode $out of a qcow2 ($base ${case#$spec}): as qemu-img" \
				check_same "$img" $mode $out
		done
		# shellcheck disable=SC2086
		[ -n "$mode" ] && check "check $mode of a qcow2 ($base ${case#$spec}): image repaired as by qemu-img" \
			repair_same "$img" $mode
	done
done
check "check -r leaks of a qcow2 needing a rebuild: only 'Check failed' on stderr, exit 1" \
	bash -c "cp '$T/rebuild.qcow2' '$T/rb1.qcow2'
	'$IMG' check -r leaks '$T/rb1.qcow2' >'$T/rb.out' 2>'$T/rb.err'; [ \$? = 1 ] &&
	[ ! -s '$T/rb.out' ] && tail -1 '$T/rb.err' | grep -qx 'minikvm-img: Check failed: Input/output error'"
check "check --output=json key order of a repaired image as qemu-img" bash -c \
	"cp '$T/both.qcow2' '$T/rj.qcow2'; '$IMG' check -r all --output=json '$T/rj.qcow2' 2>/dev/null |
	grep -o '^    \"[a-z-]*\"' | tr -d ' \"' | paste -sd, |
	grep -qx 'image-end-offset,total-clusters,corruptions-fixed,check-errors,leaks-fixed,allocated-clusters,filename,format,fragmented-clusters'"
check "check of a raw image: qemu-img's message, exit 63" bash -c \
	"'$IMG' check -f raw '$T/base.raw' 2>&1 | grep -qx 'minikvm-img: This image format does not support checks'"

# --- resize, snapshot, compare, commit, rebase -------------------------------------
check "resize raw +16M" bash -c \
	"cp '$T/base.raw' '$T/r.raw' && '$IMG' resize -f raw '$T/r.raw' +16M && [ \$(stat -c %s '$T/r.raw') -eq $((80 << 20)) ]"
check "resize qcow2 grow to 128M" bash -c \
	"cp '$T/q.qcow2' '$T/r.qcow2' && '$IMG' resize '$T/r.qcow2' 128M && qemu-img info --output=json '$T/r.qcow2' | grep -q '\"virtual-size\": 134217728' && qemu-img check -q '$T/r.qcow2'"
check "resize shrink needs --shrink" expect_rc 1 "$IMG" resize -f raw "$T/r.raw" -1M
check "resize --shrink raw" bash -c \
	"'$IMG' resize -f raw --shrink '$T/r.raw' 32M && [ \$(stat -c %s '$T/r.raw') -eq $((32 << 20)) ]"
check "snapshot -c/-l/-a/-d" bash -c "set -e
	cp '$T/q.qcow2' '$T/s.qcow2'
	'$IMG' snapshot -c mine '$T/s.qcow2'
	qemu-img snapshot -l '$T/s.qcow2' | grep -q mine
	'$IMG' snapshot -l '$T/s.qcow2' | grep -q mine
	qemu-io -c 'write -P 0x99 0 64k' '$T/s.qcow2' >/dev/null
	'$IMG' snapshot -a mine '$T/s.qcow2'
	qemu-img compare '$T/q.qcow2' '$T/s.qcow2'
	'$IMG' snapshot -d mine '$T/s.qcow2'
	! qemu-img snapshot -l '$T/s.qcow2' | grep -q mine
	qemu-img check -q '$T/s.qcow2'"
check "compare identical (raw vs qcow2 copy) exits 0" bash -c \
	"qemu-img convert -O qcow2 '$T/base.raw' '$T/bq.qcow2' && '$IMG' compare '$T/base.raw' '$T/bq.qcow2' | grep -q 'Images are identical.'"
check "compare mismatch exits 1 at qemu's offset" bash -c \
	"qemu-io -c 'write -P 1 1001 1' '$T/bq.qcow2' >/dev/null; out=\$('$IMG' compare '$T/base.raw' '$T/bq.qcow2'); [ \$? -eq 1 ] && [ \"\$out\" = \"\$(qemu-img compare '$T/base.raw' '$T/bq.qcow2')\" ]"
check "compare -s block status mismatch exits 1" expect_rc 1 "$IMG" compare -s "$T/base.raw" "$T/q.qcow2"
check "compare missing file exits 2" expect_rc 2 "$IMG" compare "$T/base.raw" "$T/nonexist"
check "commit into the raw backing file" bash -c "set -e
	cp '$T/base.raw' '$T/cb.raw'; qemu-img create -q -f qcow2 -b cb.raw -F raw '$T/ct.qcow2'
	qemu-io -c 'write -P 0x66 1M 192k' '$T/ct.qcow2' >/dev/null
	qemu-img convert -O raw '$T/ct.qcow2' '$T/expect.raw'
	'$IMG' commit '$T/ct.qcow2'
	qemu-img compare -f raw -F raw '$T/cb.raw' '$T/expect.raw'
	qemu-img compare '$T/ct.qcow2' '$T/expect.raw'"
# commit_vs_qemu FMT CREATE-OPTS COMMIT-OPTS: the same chain committed by
# minikvm-img and by qemu-img: same base, same map of the top, a top no
# larger than qemu-img's (QEMU rebuilds only v3 qcow2 without snapshots
# from scratch; we always cut the file after its last used cluster).
commit_vs_qemu() {
	local fmt=$1 copts=$2 mopts=$3 d bf=raw
	[ "$fmt" = vmdk ] && bf=vmdk	# a vmdk's backing file must be a vmdk
	for d in ours theirs; do
		mkdir -p "$T/cm-$d"; rm -f "$T/cm-$d"/*
		qemu-img create -q -f $bf "$T/cm-$d/b.$bf" 8M
		qemu-io -f $bf -c 'write -P 1 0 8M' "$T/cm-$d/b.$bf" >/dev/null
		qemu-img create -q -f "$fmt" $copts -b b.$bf -F $bf "$T/cm-$d/t.$fmt"
		qemu-io -f "$fmt" -c 'write -P 0x66 1M 192k' -c 'write -P 7 5M 4k' \
			-c 'write -P 8 8384512 4096' "$T/cm-$d/t.$fmt" >/dev/null
		if [ "$fmt" = qcow2 ] && [ "${SNAP:-}" ]; then
			qemu-img snapshot -c s1 "$T/cm-$d/t.$fmt"
			qemu-io -c 'write -P 9 2M 64k' "$T/cm-$d/t.$fmt" >/dev/null
		fi
	done
	qemu-img convert -O raw "$T/cm-ours/t.$fmt" "$T/cm-ours/exp.raw"
	cp "$T/cm-ours/t.$fmt" "$T/cm-ours/before"
	"$IMG" commit -q $mopts "$T/cm-ours/t.$fmt"
	qemu-img commit -q $mopts "$T/cm-theirs/t.$fmt"
	qemu-img compare -q "$T/cm-ours/b.$bf" "$T/cm-ours/exp.raw"
	qemu-img compare -q "$T/cm-ours/b.$bf" "$T/cm-theirs/b.$bf"
	# vmdk: qemu-img leaves a top whose parentCID no longer matches the
	# written base (unreadable); ours is emptied and relinked to the base
	if [ "$fmt" = vmdk ]; then
		qemu-img check -q "$T/cm-ours/t.$fmt"
		qemu-img compare -q "$T/cm-ours/t.$fmt" "$T/cm-ours/exp.raw"
		! qemu-img compare -q "$T/cm-theirs/t.$fmt" "$T/cm-ours/exp.raw" 2>/dev/null
		return
	fi
	qemu-img compare -q "$T/cm-ours/t.$fmt" "$T/cm-ours/exp.raw"
	diff <(cd "$T/cm-ours" && qemu-img map --output=json "t.$fmt") \
	     <(cd "$T/cm-theirs" && qemu-img map --output=json "t.$fmt")
	if [ "$fmt" = qcow2 ]; then qemu-img check -q "$T/cm-ours/t.$fmt"; fi
	[ $(stat -c %s "$T/cm-ours/t.$fmt") -le $(stat -c %s "$T/cm-theirs/t.$fmt") ]
}
# the top is emptied: every range comes from the backing file (depth 1)
top_is_empty() { ! qemu-img map --output=json "$1" | grep -q '"depth": 0'; }
check "commit empties a qcow2 v3 top like qemu-img (map, size, check)" bash -c "set -e
	$(declare -f commit_vs_qemu); IMG='$IMG' T='$T'
	commit_vs_qemu qcow2 '' ''
	$(declare -f top_is_empty); top_is_empty '$T/cm-ours/t.qcow2'"
check "commit empties a qcow2 v2 (compat=0.10) top like qemu-img" bash -c "set -e
	$(declare -f commit_vs_qemu); IMG='$IMG' T='$T'
	commit_vs_qemu qcow2 '-o compat=0.10' ''
	$(declare -f top_is_empty); top_is_empty '$T/cm-ours/t.qcow2'"
check "commit empties a qcow2 top with a snapshot; the snapshot keeps its data" bash -c "set -e
	$(declare -f commit_vs_qemu); IMG='$IMG' T='$T' SNAP=1
	commit_vs_qemu qcow2 '' ''
	$(declare -f top_is_empty); top_is_empty '$T/cm-ours/t.qcow2'
	qemu-img snapshot -a s1 '$T/cm-ours/t.qcow2'; qemu-img snapshot -a s1 '$T/cm-theirs/t.qcow2'
	qemu-img compare '$T/cm-ours/t.qcow2' '$T/cm-theirs/t.qcow2'
	qemu-img check -q '$T/cm-ours/t.qcow2'"
check "commit -d keeps the qcow2 top's data like qemu-img" bash -c "set -e
	$(declare -f commit_vs_qemu); IMG='$IMG' T='$T'
	commit_vs_qemu qcow2 '' -d
	qemu-img map --output=json '$T/cm-ours/t.qcow2' | grep -q '\"depth\": 0'"
check "commit empties a qcow (v1) top like qemu-img (map, size)" bash -c "set -e
	$(declare -f commit_vs_qemu); IMG='$IMG' T='$T'
	commit_vs_qemu qcow '' ''
	$(declare -f top_is_empty); top_is_empty '$T/cm-ours/t.qcow'"
check "commit empties a vmdk top and relinks it (qemu-img leaves it unreadable)" bash -c "set -e
	$(declare -f commit_vs_qemu); IMG='$IMG' T='$T'
	commit_vs_qemu vmdk '' ''
	$(declare -f top_is_empty); top_is_empty '$T/cm-ours/t.vmdk'"
check "commit empties a twoGbMaxExtentSparse vmdk top" bash -c "set -e
	$(declare -f commit_vs_qemu); IMG='$IMG' T='$T'
	commit_vs_qemu vmdk '-o subformat=twoGbMaxExtentSparse' ''
	$(declare -f top_is_empty); top_is_empty '$T/cm-ours/t.vmdk'"
check "commit empties a cow top: bitmap clear, reads the updated base" bash -c "set -e
	qemu-img create -q -f raw '$T/cwb.raw' 4M; qemu-io -f raw -c 'write -P 1 0 4M' '$T/cwb.raw' >/dev/null
	qemu-img create -q -f raw '$T/cwp.raw' 4M; qemu-io -f raw -c 'write -P 0x41 0 4M' '$T/cwp.raw' >/dev/null
	for v in v2 v3; do
		cp '$T/cwb.raw' '$T/cwb2.raw'; rm -f '$T/cw.cow'
		'$IMG' create -q -f cow -o compat=\$v -b cwb2.raw -F raw '$T/cw.cow'
		'$IMG' convert -n -O cow '$T/cwp.raw' '$T/cw.cow'
		'$IMG' map --output=json '$T/cw.cow' | grep -q '\"depth\": 0'
		'$IMG' commit -q '$T/cw.cow'
		cmp '$T/cwb2.raw' '$T/cwp.raw'
		! '$IMG' map --output=json '$T/cw.cow' | grep -q '\"depth\": 0'
		'$IMG' compare -q '$T/cw.cow' '$T/cwp.raw'
	done"
check "commit -b implies -d (intermediate images stay valid)" bash -c "set -e
	qemu-img create -q -f raw '$T/M0.raw' 8M
	qemu-img create -q -f qcow2 -b M0.raw -F raw '$T/M1.qcow2'
	qemu-img create -q -f qcow2 -b M1.qcow2 -F qcow2 '$T/M2.qcow2'
	qemu-io -c 'write -P 3 3M 1M' '$T/M2.qcow2' >/dev/null
	'$IMG' commit -q -b M0.raw '$T/M2.qcow2'
	qemu-img map --output=json '$T/M2.qcow2' | grep -q '\"depth\": 0'"
check "rebase (safe) onto a different base keeps the content" bash -c "set -e
	cp '$T/base.raw' '$T/old.raw'; qemu-img create -q -f raw '$T/new.raw' 64M
	qemu-io -f raw -c 'write -P 0x77 5M 1M' '$T/new.raw' >/dev/null
	qemu-img create -q -f qcow2 -b old.raw -F raw '$T/rb.qcow2'
	qemu-io -c 'write -P 0x55 3M 64k' '$T/rb.qcow2' >/dev/null
	qemu-img convert -O raw '$T/rb.qcow2' '$T/rb-expect.raw'
	'$IMG' rebase -b new.raw -F raw '$T/rb.qcow2'
	qemu-img info '$T/rb.qcow2' | grep -q 'backing file: new.raw'
	qemu-img compare '$T/rb.qcow2' '$T/rb-expect.raw'
	qemu-img check -q '$T/rb.qcow2'"
check "rebase -u only renames" bash -c "set -e
	cp '$T/old.raw' '$T/renamed.raw'
	'$IMG' rebase -u -b renamed.raw -F raw '$T/top.qcow2'
	qemu-img info '$T/top.qcow2' | grep -q 'backing file: renamed.raw'"
check "convert concatenates several sources like qemu-img" bash -c "set -e
	qemu-img create -q -f raw '$T/s1.raw' 1M; qemu-io -f raw -c 'write -P 1 0 1M' '$T/s1.raw' >/dev/null
	qemu-img create -q -f qcow2 '$T/s2.qcow2' 3M; qemu-io -c 'write -P 2 1M 1M' '$T/s2.qcow2' >/dev/null
	'$IMG' convert -O raw '$T/s1.raw' '$T/s2.qcow2' '$T/cat.raw'
	qemu-img convert -O raw '$T/s1.raw' '$T/s2.qcow2' '$T/cat2.raw'
	cmp '$T/cat.raw' '$T/cat2.raw'"
check "rebase -b '' flattens the chain into the image" bash -c "set -e
	cp '$T/base.raw' '$T/b2.raw'; qemu-img create -q -f qcow2 -b b2.raw -F raw '$T/fl.qcow2'
	qemu-io -c 'write -P 9 100k 8k' '$T/fl.qcow2' >/dev/null
	qemu-img convert -O raw '$T/fl.qcow2' '$T/fl-exp.raw'
	'$IMG' rebase -b '' '$T/fl.qcow2'
	! qemu-img info '$T/fl.qcow2' | grep -q backing
	qemu-img compare '$T/fl.qcow2' '$T/fl-exp.raw'"
check "commit -b into the bottom of a three-image chain" bash -c "set -e
	qemu-img create -q -f raw '$T/L0.raw' 8M; qemu-io -f raw -c 'write -P 1 0 8M' '$T/L0.raw' >/dev/null
	qemu-img create -q -f qcow2 -b L0.raw -F raw '$T/L1.qcow2'
	qemu-io -c 'write -P 2 1M 1M' '$T/L1.qcow2' >/dev/null
	qemu-img create -q -f qcow2 -b L1.qcow2 -F qcow2 '$T/L2.qcow2'
	qemu-io -c 'write -P 3 3M 1M' '$T/L2.qcow2' >/dev/null
	qemu-img convert -O raw '$T/L2.qcow2' '$T/L2exp.raw'
	'$IMG' commit -b L0.raw '$T/L2.qcow2'
	qemu-img compare -f raw -F raw '$T/L0.raw' '$T/L2exp.raw'
	qemu-img compare '$T/L2.qcow2' '$T/L2exp.raw'"
check "map --start-offset/--max-length like qemu-img" bash -c \
	"diff <('$IMG' map --output=json --start-offset=1M --max-length=9M '$T/top.qcow2') <(qemu-img map --output=json --start-offset=1M --max-length=9M '$T/top.qcow2')"
check "bench read and write run" bash -c \
	"'$IMG' bench -c 2000 -d 8 -f raw '$T/base.raw' | grep -q 'Run completed' && '$IMG' bench -w -r -c 2000 -d 8 '$T/q.qcow2' | grep -q 'Run completed' && qemu-img check -q '$T/q.qcow2'"
check "check -r all repairs an image marked corrupt and clears the bit" bash -c "set -e
	qemu-img create -q -f qcow2 '$T/cor.qcow2' 16M; qemu-io -c 'write -P 1 0 1M' '$T/cor.qcow2' >/dev/null
	python3 -c 'import struct,sys; f=open(sys.argv[1],\"r+b\"); f.seek(72); v=struct.unpack(\">Q\",f.read(8))[0]; f.seek(72); f.write(struct.pack(\">Q\",v|2))' '$T/cor.qcow2'
	qemu-img info '$T/cor.qcow2' | grep -q 'corrupt: true'
	'$IMG' check -r all '$T/cor.qcow2'
	qemu-img info '$T/cor.qcow2' | grep -q 'corrupt: false'
	qemu-img check -q '$T/cor.qcow2'"

echo
echo "test_img_cli: $pass passed, $failn failed, $skipn skipped"
if [ $failn -ne 0 ]; then echo "failed:$failed"; exit 1; fi
exit 0
