#!/bin/bash
# SeaBIOS boots a boot sector from virtio-blk-pci: no -kernel, the firmware
# finds the disk through the modern virtio capabilities, reads sector 0 and
# jumps to it; the sector prints a line on COM1 and leaves through
# isa-debug-exit (status 99). Run with -drive if=virtio (raw), with
# -drive if=none + -device virtio-blk-pci,drive=ID,addr=5 (qcow2), and the
# same two on QEMU 7.2, whose SeaBIOS debug log (port 0x402) must report
# the same disk, mode, size and boot steps.
# Boot order: two virtio disks whose sectors print different lines; with
# no bootindex SeaBIOS boots the first slot's, with bootindex= the chosen
# one, through the "bootorder" fw_cfg file (OpenFirmware paths, as QEMU
# builds them; its entries are in the debug log); -boot strict=on puts
# HALT after the listed devices; -boot menu=on,splash-time= and
# reboot-timeout= reach SeaBIOS; a duplicate bootindex is refused. Each
# run also on QEMU 7.2: same entries, same disk booted.
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

. tests/integration/bootsector-lib.sh
make_sector "$dir/boot.bin" "BOOTSECTOR: booted from the virtio disk"
make_sector "$dir/boota.bin" "BOOTSECTOR: disk A"
make_sector "$dir/bootb.bin" "BOOTSECTOR: disk B"
# A 1 MiB disk: the sector, then zeros; the same disk as qcow2.
truncate -s 1M "$dir/disk.raw"
dd if="$dir/boot.bin" of="$dir/disk.raw" conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$dir/disk.raw" "$dir/disk.qcow2" ||
	{ echo "FAIL: qemu-img convert"; exit 1; }
# Disks A (raw) and B (qcow2) for the boot order runs.
truncate -s 1M "$dir/a.raw" "$dir/b.raw"
dd if="$dir/boota.bin" of="$dir/a.raw" conv=notrunc status=none
dd if="$dir/bootb.bin" of="$dir/b.raw" conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$dir/b.raw" "$dir/b.qcow2" ||
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
# --- boot order ---------------------------------------------------------

# The entries SeaBIOS read from the bootorder file (first boot only).
bootorder_entries() {
	awk '/^boot order:$/ { on = 1; next } on && /^[0-9]+: / { print; next } on { exit }' "$1"
}

# check_order NAME WANT-LINE WANT-ENTRIES...: the run printed WANT-LINE on
# COM1 (none: no sector line at all) and SeaBIOS listed exactly the entries.
check_order() {
	local name=$1 want=$2 got ok=true
	shift 2
	got=$(bootorder_entries "$dir/$name.log")
	if [ "$got" != "$(printf '%s\n' "$@" | sed '/^$/d')" ]; then
		fail "$name: bootorder entries"
		printf '    got:  %s\n' "$got"; printf '    want: %s\n' "$@"
		ok=false
	fi
	if [ "$want" = none ]; then
		if grep -aq 'BOOTSECTOR' "$dir/$name.con"; then
			fail "$name: a sector booted: $(grep -a BOOTSECTOR "$dir/$name.con")"
			ok=false
		fi
	else
		grep -aq "$want" "$dir/$name.con" ||
			{ fail "$name: no '$want' on COM1"; ok=false; }
		! grep -a BOOTSECTOR "$dir/$name.con" | grep -avq "$want" ||
			{ fail "$name: another sector booted too"; ok=false; }
	fi
	if $ok; then
		echo "PASS $name: booted ${want/none/nothing}; bootorder: ${*:-(empty)}"
	else
		echo "--- $name debug log (tail)"; tail -25 "$dir/$name.log"
	fi
}

# expect_log NAME REGEX...: the debug log has each line.
expect_log() {
	local name=$1 re
	shift
	for re in "$@"; do
		grep -Eq -- "$re" "$dir/$name.log" || fail "$name: debug log lacks /$re/"
	done
}

# both NAME ARGS...: the run on minikvm and (if present) on QEMU.
both() {
	local name=$1
	shift
	boot_minikvm "minikvm-$name" "$@"
	if $have_qemu; then
		boot_qemu "qemu-$name" "$@"
	fi
}

# check_both NAME WANT-LINE ENTRIES...: check_order on both, same entries.
check_both() {
	local name=$1
	shift
	check_order "minikvm-$name" "$@"
	if $have_qemu; then
		check_order "qemu-$name" "$@"
		[ "$(bootorder_entries "$dir/minikvm-$name.log")" = \
		  "$(bootorder_entries "$dir/qemu-$name.log")" ] ||
			fail "$name: bootorder differs between minikvm and QEMU"
	fi
}

DA="-drive file=$dir/a.raw,if=none,id=da,format=raw"
DB="-drive file=$dir/b.qcow2,if=none,id=db,format=qcow2"
# The NIC without an option ROM (romfile=, on both VMMs).
NIC="-netdev user,id=n0 -device virtio-net-pci,netdev=n0,addr=6,romfile=,bootindex=1"
BLK4=/pci@i0cf8/scsi@4/disk@0,0
BLK5=/pci@i0cf8/scsi@5/disk@0,0
ETH6=/pci@i0cf8/ethernet@6/ethernet-phy@0

# No bootindex: the first slot's disk (A), an empty bootorder file.
# shellcheck disable=SC2086
both order-none $DA -device virtio-blk-pci,drive=da,addr=4 \
	$DB -device virtio-blk-pci,drive=db,addr=5
check_both order-none "BOOTSECTOR: disk A"
# bootindex picks B at slot 5 (written the way libvirt does); the boot
# menu waits splash-time ms.
# shellcheck disable=SC2086
both order-index $DA -device virtio-blk-pci,drive=da,addr=4,bootindex=2 \
	$DB -device virtio-blk-pci,bus=pci.0,addr=0x5,drive=db,id=virtio-disk1,bootindex=1 \
	-boot menu=on,splash-time=300
check_both order-index "BOOTSECTOR: disk B" "1: $BLK5" "2: $BLK4"
for r in minikvm-order-index $($have_qemu && echo qemu-order-index); do
	expect_log "$r" '^Press ESC for boot menu\.' '^Searching bootorder for: /pci@i0cf8/\*@5$'
done
# strict=on: HALT right after the NIC (no ROM: nothing to boot there), the
# disks after it: no boot; reboot-timeout=0 resets at once, -no-reboot ends.
# shellcheck disable=SC2086
both order-strict $NIC $DA -device virtio-blk-pci,drive=da,addr=4 \
	$DB -device virtio-blk-pci,drive=db,addr=5 -boot strict=on,reboot-timeout=0 -no-reboot
check_both order-strict none "1: $ETH6" "2: HALT"
for r in minikvm-order-strict $($have_qemu && echo qemu-order-strict); do
	expect_log "$r" '^No bootable device\.  Retrying in 0 seconds\.'
	[ "$(cat "$dir/$r.rc")" = 0 ] || fail "$r: exit status $(cat "$dir/$r.rc"), want 0"
done

# -boot order=n without bootindex: only the CMOS order (hw/rtc.c) changes;
# with no NIC option ROM, SeaBIOS tries the blank disk, then the floppy
# fallback, then gives up: the same attempts as QEMU's (its NIC's ROM off).
truncate -s 1M "$dir/blank.raw"
# shellcheck disable=SC2086
both order-n ${NIC%,bootindex=1} -drive "file=$dir/blank.raw,if=virtio,format=raw" \
	-boot order=n,reboot-timeout=0 -no-reboot
attempts() {
	grep -E '^Booting from|^Boot failed|^No bootable device' "$1" | paste -sd'|' -
}
check_order minikvm-order-n none
want='Booting from Hard Disk...|Boot failed: not a bootable disk|Booting from Floppy...'
want+='|Boot failed: could not read the boot disk|No bootable device.  Retrying in 0 seconds.'
if $have_qemu; then
	check_order qemu-order-n none
	want=$(attempts "$dir/qemu-order-n.log")
fi
got=$(attempts "$dir/minikvm-order-n.log")
if [ "$got" = "$want" ]; then
	echo "PASS order-n: boot attempts $got"
else
	fail "order-n: boot attempts '$got', want '$want'"
fi

# A bootindex used twice is refused at startup with QEMU's message; -drive
# has no bootindex (QEMU: "does not support the option 'bootindex'").
# refused NAME MESSAGE-REGEX ARGS...: minikvm exits non-zero at once saying so.
refused() {
	local name=$1 re=$2 rc
	shift 2
	boot "$name" "$M" -m 64 -nographic -nodefaults -bios "$BIOS" "$@"
	rc=$(cat "$dir/$name.rc")
	if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -Eq -- "$re" "$dir/$name.con"; then
		echo "PASS $name: $(grep -Em1 -- "$re" "$dir/$name.con")"
	else
		fail "$name: status $rc, want an error /$re/: $(head -3 "$dir/$name.con")"
	fi
}
# shellcheck disable=SC2086
refused minikvm-dup 'drive=db,addr=5,bootindex=1: The bootindex 1 has already been used$' \
	$DA -device virtio-blk-pci,drive=da,addr=4,bootindex=1 \
	$DB -device virtio-blk-pci,drive=db,addr=5,bootindex=1
# shellcheck disable=SC2086
refused minikvm-dup-net 'bootindex=1: The bootindex 1 has already been used$' \
	$NIC $DA -device virtio-blk-pci,drive=da,addr=4,bootindex=1
refused minikvm-drive-index "bootindex" -drive "file=$dir/a.raw,if=virtio,format=raw,bootindex=1"
# shellcheck disable=SC2086
refused minikvm-bad-index "bootindex" $DA -device virtio-blk-pci,drive=da,bootindex=first

# The firmware's requests never broke the device.
! grep -q 'device needs reset' "$dir"/minikvm-*.con ||
	fail "minikvm: $(grep -h 'device needs reset' "$dir"/minikvm-*.con | head -1)"

[ $fails = 0 ] || { echo "seabios-virtio: $fails check(s) failed"; exit 1; }
echo "seabios-virtio: all checks passed"
