#!/bin/bash
# virtio-blk-pci end to end: the kit's CPL3 virtio driver (case=virtio-blk)
# writes patterns to sectors 0, 8-15 and the last one, flushes, reads them
# back, checks GET_ID, IOERR beyond the capacity and UNSUPP for an unknown
# type; on raw and qcow2 images (each I/O engine), modern and legacy, then
# the host checks the image with qemu-io / qemu-img check. Read-only drives
# (writes, discard, write-zeroes refused), the same case on QEMU 7.2, and the
# -drive/-device option errors. Then, on minikvm and QEMU alike: discard and
# write-zeroes, the configuration (topology, seg_max, WCE toggle), 4 queues
# with an MSI-X vector each, and 16 MiB of mixed-size pattern I/O verified
# from the host (raw and qcow2), also from images on tmpfs. MK_DRIVE_EXTRA overrides the extra -drive
# options minikvm gets for those (default ",discard=unmap", as QEMU).
# MINIKVM=path overrides build/minikvm.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/kit-lib.sh
M=${MINIKVM:-build/minikvm}
[ -x "$M" ] && [ -f build/guest/testkit.elf ] || { echo "FAIL: build first (make)"; exit 1; }
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null ||
	{ echo "FAIL: qemu-img/qemu-io missing"; exit 1; }

BASE="-m 128 -nographic -nodefaults -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4"
DEV="-device virtio-blk-pci,drive=d0,serial=minikvm-kit"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
# Extra -drive options for minikvm in the discard/RO/feature runs (QEMU gets
# ",discard=unmap"): MK_DRIVE_EXTRA= overrides.
MK_DRIVE_EXTRA=${MK_DRIVE_EXTRA-,discard=unmap}
run() {	# run_kit, and on failure the VMM's own error lines (e.g. an unknown option)
	run_kit "$@" && return 0
	fails=$((fails + 1))
	grep -av 'testkit' "build/tests/kit/${KIT_TAG:-}${2//,/+}.log" | grep -ai 'error\|unknown' |
		head -3 | sed 's/^/  VMM: /'
}
check() {	# check NAME COMMAND...: the command must succeed
	local name=$1
	shift
	if "$@" >/dev/null 2>&1; then echo "PASS $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
# The sectors the kit writes, as seen from the host (4 MiB image).
verify_image() {	# verify_image FORMAT FILE
	qemu-io -f "$1" -c 'read -P 0xa1 0 512' -c 'read -P 0xb2 4096 4096' \
		-c 'read -P 0xc3 4193792 512' -c 'read -P 0 512 3584' "$2" | grep -q 'Pattern verification failed' &&
		return 1
	qemu-io -f "$1" -c 'read -P 0xa1 0 512' -c 'read -P 0xb2 4096 4096' \
		-c 'read -P 0xc3 4193792 512' -c 'read -P 0 512 3584' "$2" | grep -c '^read ' | grep -qx 4
}

for fmt in raw qcow2; do
	for aio in threads io_uring native; do
		img=$T/disk-$aio.$fmt
		cache=writeback
		[ $aio = native ] && cache=none
		qemu-img create -q -f $fmt "$img" 4M
		KIT_TAG=minikvm-$fmt-$aio- run \
			"$M $BASE -d guest_errors -drive file=$img,format=$fmt,if=none,id=d0,aio=$aio,cache=$cache $DEV" \
			virtio-blk
		check "minikvm $fmt aio=$aio: host sees the guest's sectors" verify_image $fmt "$img"
		[ $fmt = qcow2 ] && check "minikvm $fmt aio=$aio: qemu-img check" qemu-img check -q "$img"
	done
	img=$T/legacy.$fmt
	qemu-img create -q -f $fmt "$img" 4M
	KIT_TAG=minikvm-$fmt-legacy- run \
		"$M $BASE -drive file=$img,format=$fmt,if=none,id=d0 $DEV" virtio-blk mode=legacy
	check "minikvm $fmt legacy: host sees the guest's sectors" verify_image $fmt "$img"
	img=$T/packed.$fmt
	qemu-img create -q -f $fmt "$img" 4M
	KIT_TAG=minikvm-$fmt-packed- run \
		"$M $BASE -drive file=$img,format=$fmt,if=none,id=d0 $DEV,packed=on" virtio-blk packed=1
	check "minikvm $fmt packed: host sees the guest's sectors" verify_image $fmt "$img"
	# Read-only: the patterns stay; writes, discard and write-zeroes fail
	# with IOERR. With discard=unmap strictly; with the default (QEMU's
	# discard=ignore) a discard may complete as a no-op.
	KIT_TAG=minikvm-$fmt-ro- run \
		"$M $BASE -drive file=$img,format=$fmt,if=none,id=d0,readonly=on$MK_DRIVE_EXTRA \
		$DEV" \
		virtio-blk readonly=1
	KIT_TAG=minikvm-$fmt-ro-default- run \
		"$M $BASE -drive file=$img,format=$fmt,if=none,id=d0,readonly=on $DEV" \
		virtio-blk readonly=1 ro_discard=ok
	check "minikvm $fmt readonly: image unchanged" verify_image $fmt "$img"
	[ $fmt = qcow2 ] && check "minikvm $fmt legacy: qemu-img check" qemu-img check -q "$img"
done

# The if=virtio shorthand (serial= on the drive).
img=$T/short.raw
qemu-img create -q -f raw "$img" 4M
KIT_TAG=minikvm-ifvirtio- run \
	"$M $BASE -drive file=$img,format=raw,if=virtio,serial=minikvm-kit" virtio-blk
check "minikvm if=virtio: host sees the guest's sectors" verify_image raw "$img"

if command -v qemu-system-x86_64 >/dev/null; then
	QEMU="qemu-system-x86_64 -enable-kvm $BASE"
	img=$T/qemu.raw
	qemu-img create -q -f raw "$img" 4M
	KIT_TAG=qemu- run "$QEMU -drive file=$img,if=none,id=d0,format=raw $DEV" virtio-blk
	check "qemu: host sees the guest's sectors" verify_image raw "$img"
	KIT_TAG=qemu-legacy- run "$QEMU -drive file=$img,if=none,id=d0,format=raw $DEV" \
		virtio-blk mode=legacy
	KIT_TAG=qemu-packed- run "$QEMU -drive file=$img,if=none,id=d0,format=raw $DEV,packed=on" \
		virtio-blk packed=1
	KIT_TAG=qemu-ro- run \
		"$QEMU -drive file=$img,if=none,id=d0,format=raw,readonly=on,discard=unmap $DEV" \
		virtio-blk readonly=1
	KIT_TAG=qemu-ro-default- run \
		"$QEMU -drive file=$img,if=none,id=d0,format=raw,readonly=on $DEV" \
		virtio-blk readonly=1 ro_discard=ok
else
	echo "FAIL: qemu-system-x86_64 missing (run scripts/setup)"
	fails=$((fails + 1))
fi

# ---- Feature cases, on minikvm and QEMU 7.2 with the same options ----
# The expected content of the pattern case (tests/guest/virtio_blk.c,
# pattern_sector): xorshift words derived from the sector number and seed.
verify_pattern() {	# verify_pattern FORMAT FILE [SIZE_MIB] [SEED]
	local raw=$T/pattern-check.raw
	qemu-img convert -f "$1" -O raw "$2" "$raw" || return 1
	python3 - "$raw" "${3:-16}" "${4:-0x5eed}" <<'EOF'
import struct, sys
M = (1 << 64) - 1
path, mib, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 0)
with open(path, "rb") as f:
    for lba in range(mib * 2048):
        x = (((lba + 1) * 0x9e3779b97f4a7c15) & M) ^ seed
        words = []
        for _ in range(64):
            x ^= x >> 12
            x ^= (x << 25) & M
            x ^= x >> 27
            words.append((x * 0x2545f4914f6cdd1d) & M)
        if struct.unpack("<64Q", f.read(512)) != tuple(words):
            sys.exit(f"sector {lba} differs from the pattern")
EOF
}
# qio_reads FORMAT FILE 'read -P ..' ...: every read must run and match.
qio_reads() {
	local fmt=$1 file=$2 out c args=()
	shift 2
	for c in "$@"; do args+=(-c "$c"); done
	out=$(qemu-io -f "$fmt" "${args[@]}" "$file" 2>&1)
	! printf '%s' "$out" | grep -q 'verification failed' &&
		[ "$(printf '%s\n' "$out" | grep -c '^read ')" = $# ]
}
# What the discard case leaves (sectors from 2048): 0x5c, zeros at 8-71 and
# 256-511 (+unmap), 0x5c around them and after the discarded range.
verify_discard() {	# verify_discard FORMAT FILE
	qio_reads "$1" "$2" 'read -P 0x5c 1048576 4096' 'read -P 0 1052672 32768' \
		'read -P 0x5c 1085440 94208' 'read -P 0 1179648 131072' \
		'read -P 0x5c 1310720 45056' 'read -P 0x5c 1835008 262144'
}
# The virtio-blk-config line with the expected topology values.
config_line() {	# config_line LOG
	grep -aq 'physical_block_exp 3 alignment_offset 0 min_io_size 16 opt_io_size 128' "$1"
}
TOPO="physical_block_size=4096,min_io_size=8192,opt_io_size=65536"
feature_cases() {	# feature_cases NAME VMM_CMD DRIVE_EXTRA
	local name=$1 vmm=$2 dx=$3 fmt img
	for fmt in raw qcow2; do
		img=$T/$name-dz.$fmt
		qemu-img create -q -f $fmt "$img" 64M
		KIT_TAG=$name-$fmt- run "$vmm -drive file=$img,format=$fmt,if=none,id=d0$dx $DEV" \
			virtio-blk-discard
		check "$name $fmt discard: host sees the zeroed ranges and the pattern" \
			verify_discard $fmt "$img"
		[ $fmt = qcow2 ] &&
			check "$name $fmt discard: qemu-img check" qemu-img check -q "$img"
		img=$T/$name-pat.$fmt
		qemu-img create -q -f $fmt "$img" 64M
		KIT_TAG=$name-$fmt- run "$vmm -drive file=$img,format=$fmt,if=none,id=d0$dx $DEV" \
			virtio-blk-pattern
		check "$name $fmt pattern: host verifies 16 MiB" verify_pattern $fmt "$img"
		[ $fmt = qcow2 ] &&
			check "$name $fmt pattern: qemu-img check" qemu-img check -q "$img"
	done
	img=$T/$name-cfg.raw
	qemu-img create -q -f raw "$img" 64M
	KIT_TAG=$name- run "$vmm -drive file=$img,format=raw,if=none,id=d0$dx $DEV" \
		virtio-blk-config
	KIT_TAG=$name-topology- run "$vmm -drive file=$img,format=raw,if=none,id=d0$dx $DEV,$TOPO" \
		virtio-blk-config
	check "$name config: topology values as configured ($TOPO)" \
		config_line "build/tests/kit/$name-topology-virtio-blk-config.log"
	KIT_TAG=$name- run "$vmm -drive file=$img,format=raw,if=none,id=d0$dx $DEV,num-queues=4" \
		virtio-blk-mq queues=4
	check "$name mq: host sees each queue's block" qio_reads raw "$img" \
		'read -P 0xd0 131072 4096' 'read -P 0xd1 135168 4096' \
		'read -P 0xd2 139264 4096' 'read -P 0xd3 143360 4096'
	# Legacy interface: MSI-X moves the device configuration to offset 0x18.
	KIT_TAG=$name-legacy- run \
		"$vmm -drive file=$img,format=raw,if=none,id=d0$dx $DEV,num-queues=4" \
		virtio-blk-mq queues=4 mode=legacy
}
feature_cases minikvm "$M $BASE -d guest_errors" "$MK_DRIVE_EXTRA"
# size-max= (minikvm only: QEMU 7.2 never offers SIZE_MAX): the guest sees it.
KIT_TAG=minikvm-size-max- run \
	"$M $BASE -drive file=$T/minikvm-cfg.raw,format=raw,if=none,id=d0 $DEV,size-max=64K" \
	virtio-blk-config
check "minikvm size-max=64K: SIZE_MAX offered, size_max 65536 in the config" \
	grep -aq 'config: size_max 65536 ' build/tests/kit/minikvm-size-max-virtio-blk-config.log
# Images on tmpfs: their data I/O is done inline by the thread serving the
# queue (memory-backed files); the same patterns must reach the file.
S=$(mktemp -d /dev/shm/vblk-test.XXXXXX)
trap 'rm -rf "$T" "$S"' EXIT
for fmt in raw qcow2; do
	img=$S/pat.$fmt
	qemu-img create -q -f $fmt "$img" 64M
	KIT_TAG=minikvm-tmpfs-$fmt- run "$M $BASE -drive file=$img,format=$fmt,if=none,id=d0 $DEV" \
		virtio-blk-pattern
	check "minikvm tmpfs $fmt pattern: host verifies 16 MiB" verify_pattern $fmt "$img"
	img=$S/basic.$fmt
	qemu-img create -q -f $fmt "$img" 4M
	KIT_TAG=minikvm-tmpfs-$fmt- run "$M $BASE -drive file=$img,format=$fmt,if=none,id=d0 $DEV" \
		virtio-blk
	check "minikvm tmpfs $fmt: host sees the guest's sectors" verify_image $fmt "$img"
done
if command -v qemu-system-x86_64 >/dev/null; then
	feature_cases qemu "qemu-system-x86_64 -enable-kvm $BASE" ",discard=unmap"
fi

# Option errors: one line, exit status 1, before the guest starts.
cli_error() {	# cli_error PATTERN ARGS...
	local pattern=$1 out rc
	shift
	out=$(timeout 10 "$M" -m 64 -nographic -nodefaults "$@" -kernel build/guest/testkit.elf \
		</dev/null 2>&1)
	rc=$?
	if [ $rc = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] &&
	   printf '%s' "$out" | grep -q -- "$pattern"; then
		echo "PASS error: $* -> $out"
	else
		echo "FAIL error: $* -> status $rc: $out"
		fails=$((fails + 1))
	fi
}
img=$T/err.raw
qemu-img create -q -f raw "$img" 1M
cli_error "drive=ID is required" -device virtio-blk-pci
cli_error "no -drive with id=nope" -device virtio-blk-pci,drive=nope
cli_error "file= is required" -drive if=none,id=d0 -device virtio-blk-pci,drive=d0
cli_error "$T/missing.raw" -drive file=$T/missing.raw,format=raw,if=none,id=d0 \
	-device virtio-blk-pci,drive=d0
cli_error "unknown or bad parameter 'bogus=1'" -drive file=$img,if=none,id=d0,bogus=1
cli_error "only if=none and if=virtio" -drive file=$img,format=raw,if=ide
cli_error "invalid cache mode 'fast'" -drive file=$img,format=raw,if=virtio,cache=fast
cli_error "invalid aio 'posix'" -drive file=$img,format=raw,if=virtio,aio=posix
cli_error "readonly must be on or off" -drive file=$img,format=raw,if=virtio,readonly=yes
cli_error "already in use" -drive file=$img,format=raw,if=none,id=d0 \
	-device virtio-blk-pci,drive=d0 -device virtio-blk-pci,drive=d0
cli_error "invalid addr" -drive file=$img,format=raw,if=none,id=d0 \
	-device virtio-blk-pci,drive=d0,addr=zz
cli_error "unknown or bad parameter 'foo'" -device virtio-blk-pci,drive=d0,foo=1

[ $fails = 0 ] || { echo "virtio-blk: $fails check(s) failed"; exit 1; }
echo "virtio-blk: all checks passed"
