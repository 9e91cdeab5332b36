#!/bin/bash
# virtio-blk-pci end to end: the kit's CPL3 virtio driver (case=virtio-blk)
# writes patterns to sectors 0, 8-15 and the last one, flushes, reads them
# back, checks GET_ID, IOERR beyond the capacity and UNSUPP for an unknown
# type; on raw and qcow2 images (each I/O engine), modern and legacy, then
# the host checks the image with qemu-io / qemu-img check. Read-only drives,
# the same case on QEMU 7.2, and the -drive/-device option errors.
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
run() { run_kit "$@" || fails=$((fails + 1)); }
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
	# Read-only: the patterns stay, writes fail with IOERR.
	KIT_TAG=minikvm-$fmt-ro- run \
		"$M $BASE -drive file=$img,format=$fmt,if=none,id=d0,readonly=on $DEV" \
		virtio-blk readonly=1
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
	KIT_TAG=qemu-ro- run \
		"$QEMU -drive file=$img,if=none,id=d0,format=raw,readonly=on $DEV" \
		virtio-blk readonly=1
else
	echo "FAIL: qemu-system-x86_64 missing (run scripts/setup)"
	fails=$((fails + 1))
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
