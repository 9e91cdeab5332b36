#!/bin/bash
# SeaBIOS boots a boot sector from virtio-blk-pci: no -kernel, the firmware
# finds the disk through the modern virtio capabilities, reads sector 0 and
# jumps to it; the sector prints a line on COM1 and leaves through
# isa-debug-exit (status 99). Run with -drive if=virtio (raw), with
# -drive if=none + -device virtio-blk-pci,drive=ID,addr=5 (qcow2), and the
# same two on QEMU 7.2, whose SeaBIOS debug log (port 0x402) must report
# the same disk, mode, size and boot steps.
# MINIKVM=path, BIOS=path, QEMU=none (skip QEMU), TIMEOUT=seconds.
set -u
cd "$(dirname "$0")/../.." || exit 1
M=${MINIKVM:-build/minikvm}
BIOS=${BIOS:-/usr/share/seabios/bios-256k.bin}
TIMEOUT=${TIMEOUT:-120}
QEMU=${QEMU:-qemu-system-x86_64}
dir=$(mktemp -d /tmp/minikvm-seabios-virtio.XXXXXX)
trap 'rm -rf "$dir"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

[ -x "$M" ] || { echo "FAIL: $M not built"; exit 1; }
[ -r "$BIOS" ] || { echo "FAIL: $BIOS missing (Debian package seabios)"; exit 1; }
have_qemu=false
if [ "$QEMU" != none ] && command -v "$QEMU" >/dev/null && [ -w /dev/kvm ]; then
	have_qemu=true
fi

# The boot sector: 16-bit real mode at 0000:7c00, polled COM1 output, then
# the exit port. Assembled here so the test needs only binutils.
cat > "$dir/boot.S" <<'EOF'
	.code16
	.globl	_start
_start:
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	mov	$msg, %si
next:
	lodsb
	test	%al, %al
	jz	done
	mov	%al, %bl
	mov	$0x3fd, %dx		/* line status: wait for THR empty */
1:	in	%dx, %al
	test	$0x20, %al
	jz	1b
	mov	$0x3f8, %dx
	mov	%bl, %al
	out	%al, %dx
	jmp	next
done:
	mov	$0xf4, %dx		/* isa-debug-exit: status (0x31 << 1) | 1 */
	mov	$0x31, %al
	out	%al, %dx
	hlt
	jmp	done
msg:
	.asciz	"BOOTSECTOR: booted from the virtio disk\r\n"
	.org	510
	.word	0xaa55
EOF
as --32 -o "$dir/boot.o" "$dir/boot.S" &&
	ld -m elf_i386 -Ttext 0x7c00 --oformat binary -e _start -o "$dir/boot.bin" "$dir/boot.o" ||
	{ echo "FAIL: cannot assemble the boot sector (binutils)"; exit 1; }
[ "$(stat -c %s "$dir/boot.bin")" = 512 ] || { echo "FAIL: boot sector is not 512 bytes"; exit 1; }
# A 1 MiB disk: the sector, then zeros; the same disk as qcow2.
truncate -s 1M "$dir/disk.raw"
dd if="$dir/boot.bin" of="$dir/disk.raw" conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$dir/disk.raw" "$dir/disk.qcow2" ||
	{ echo "FAIL: qemu-img convert"; exit 1; }

# boot NAME VMM-COMMAND...: run until the exit port (or TIMEOUT), console
# in $dir/NAME.con, debug log in $dir/NAME.log, status in $dir/NAME.rc.
boot() {
	local name=$1 start
	shift
	start=$(date +%s%N)
	timeout "$TIMEOUT" "$@" </dev/null >"$dir/$name.con" 2>&1
	echo $? >"$dir/$name.rc"
	echo "$name: status $(cat "$dir/$name.rc") in $(( ($(date +%s%N) - start) / 1000000 )) ms"
}
boot_minikvm() {
	local name=$1
	shift
	boot "$name" "$M" -m 64 -nographic -nodefaults -serial stdio -bios "$BIOS" \
		-device isa-debug-exit,iobase=0xf4,iosize=4 -debugcon "file:$dir/$name.log" \
		-d guest_errors "$@"
}
boot_qemu() {
	local name=$1
	shift
	boot "$name" "$QEMU" -enable-kvm -m 64 -nographic -nodefaults -serial stdio \
		-bios "$BIOS" -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-chardev "file,id=dbg,path=$dir/$name.log" \
		-device isa-debugcon,iobase=0x402,chardev=dbg "$@"
}

# The debug-log lines that say what SeaBIOS found and did with the disk:
# the device and its transport, the drive's size and logical geometry, the
# bootorder lookup for it, the boot attempts. Not the physical geometry:
# QEMU offers VIRTIO_BLK_F_GEOMETRY (PCHS=2/16/63 translation=none), minikvm
# does not (PCHS=0/0/0 translation=lba); SeaBIOS derives the same LCHS.
summary() {
	grep -E '^found virtio-blk at|virtio mode$|^Searching bootorder for: /pci|^Booting from' \
		"$1"
	grep -Eo '^drive 0x[0-9a-f]+: .*LCHS=[0-9/]+ s=[0-9]+' "$1" | sed 's/.*\(LCHS=\)/\1/'
}

# check NAME SLOT: the run booted the sector from the virtio disk at SLOT.
check() {
	local name=$1 slot=$2 log=$dir/$1.log
	local ok=true
	local rc
	rc=$(cat "$dir/$name.rc")
	[ "$rc" = 99 ] || { fail "$name: exit status $rc, want 99"; ok=false; }
	grep -aq 'BOOTSECTOR: booted from the virtio disk' "$dir/$name.con" ||
		{ fail "$name: the boot sector's line is not on COM1"; ok=false; }
	for re in "^found virtio-blk at 00:0$slot.0" \
		'^pci dev .* using modern \(1\.0\) virtio mode' \
		"^Searching bootorder for: /pci@i0cf8/\*@$slot\$" \
		'^drive 0x[0-9a-f]+: .* s=2048$' '^Booting from Hard Disk\.\.\.' \
		'^Booting from 0000:7c00'; do
		grep -Eq -- "$re" "$log" || { fail "$name: debug log lacks /$re/"; ok=false; }
	done
	if $ok; then
		echo "PASS $name: SeaBIOS found virtio-blk at 00:0$slot.0 and booted its sector"
	else
		echo "--- $name debug log (tail)"; tail -25 "$log"
		echo "--- $name console (tail)"; tail -5 "$dir/$name.con" | cat -v
	fi
}

# compare NAME: minikvm's summary equals QEMU's for the same options.
compare() {
	local a b
	a=$(summary "$dir/minikvm-$1.log")
	b=$(summary "$dir/qemu-$1.log")
	if [ "$a" = "$b" ]; then
		echo "PASS $1: SeaBIOS saw the same disk and boot steps on minikvm and QEMU"
	else
		fail "$1: SeaBIOS summaries differ"
		diff <(echo "$b") <(echo "$a") | sed 's/^/    (qemu < > minikvm) /'
	fi
}

IFV="-drive file=$dir/disk.raw,if=virtio,format=raw"
DEV="-drive file=$dir/disk.qcow2,if=none,id=d0,format=qcow2 -device virtio-blk-pci,drive=d0,addr=5"
# shellcheck disable=SC2086
boot_minikvm minikvm-ifvirtio $IFV
check minikvm-ifvirtio 2
# shellcheck disable=SC2086
boot_minikvm minikvm-device $DEV
check minikvm-device 5
if $have_qemu; then
	# shellcheck disable=SC2086
	boot_qemu qemu-ifvirtio $IFV
	check qemu-ifvirtio 2
	# shellcheck disable=SC2086
	boot_qemu qemu-device $DEV
	check qemu-device 5
	compare ifvirtio
	compare device
else
	echo "note: no QEMU run (QEMU=$QEMU)"
fi
# The firmware's requests never broke the device.
! grep -q 'device needs reset' "$dir"/minikvm-*.con ||
	fail "minikvm: $(grep -h 'device needs reset' "$dir"/minikvm-*.con | head -1)"

[ $fails = 0 ] || { echo "seabios-virtio: $fails check(s) failed"; exit 1; }
echo "seabios-virtio: all checks passed"
