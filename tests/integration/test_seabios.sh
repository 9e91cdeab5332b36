#!/bin/bash
# SeaBIOS boots through the i440FX/PIIX3 chipset model: reset vector in the
# read-only BIOS slot, PAM shadowing, PCI config mechanism #1, fw_cfg with
# DMA (e820, ACPI table loader) and reaches "No bootable device". Asserts
# on its debug log (port 0x402), on the order of its boot attempts against
# QEMU's for the same -boot option, and on the ports it touched that no
# device claims (-d guest_errors).
#
# Boot attempts without drives: SeaBIOS orders its boot entries by the CMOS
# boot order (0x3d/0x38), but with no drive registered it only appends its
# fallbacks, floppy then hard disk, whatever -boot says. QEMU under KVM
# adds the kvmvapic.bin legacy option ROM, whose BCV SeaBIOS registers at
# the hard-disk priority: that alone puts "Hard Disk" first there. So the
# reference is QEMU with that ROM off (-global kvm-apic.vapic=false).
# Set QEMU=none to skip the QEMU runs (expected sequences are then fixed).
set -u
M=${MINIKVM:-build/minikvm}
BIOS=${BIOS:-/usr/share/seabios/bios-256k.bin}
TIMEOUT=${TIMEOUT:-120}
QEMU=${QEMU:-qemu-system-x86_64}
dir=$(mktemp -d /tmp/minikvm-seabios.XXXXXX)
log=$dir/seabios.log
out=$dir/console.log
gelog=$dir/guest_errors.log
pid=
qpid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	echo "--- debug log (tail)"; tail -40 "$log" 2>/dev/null
	echo "--- console (tail)"; tail -20 "$out" 2>/dev/null | cat -v
	exit 1
}
[ -x "$M" ] || fail "$M not built"
[ -r "$BIOS" ] || fail "$BIOS missing (Debian package seabios)"
have_qemu=false
if [ "$QEMU" != none ] && command -v "$QEMU" > /dev/null && [ -w /dev/kvm ]; then
	have_qemu=true
fi

# Wait until debug log $2 shows "No bootable device" (SeaBIOS then waits
# forever), then stop process $3. $1 names the run.
wait_no_boot() {
	local what=$1 dlog=$2 p=$3 start
	start=$(date +%s)
	while ! grep -q "No bootable device" "$dlog" 2>/dev/null; do
		kill -0 "$p" 2>/dev/null || fail "$what exited early"
		[ $(( $(date +%s) - start )) -lt "$TIMEOUT" ] ||
			fail "$what: no 'No bootable device' in ${TIMEOUT}s"
		sleep 0.5
	done
	echo "$what: reached 'No bootable device' (+$(( $(date +%s) - start ))s)"
	kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
}

# Boot SeaBIOS with extra options until "No bootable device", leaving its
# debug log in $log and guest errors in $gelog.
boot_seabios() {
	rm -f "$log" "$out" "$gelog"
	"$M" -nographic -bios "$BIOS" -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-debugcon "file:$log" -d guest_errors -D "$gelog" "$@" \
		< /dev/null > "$out" 2>&1 &
	pid=$!
	wait_no_boot "minikvm $*" "$log" "$pid"
	pid=
}

# Start QEMU with the same firmware and extra options in the background,
# its debug log in $dir/qemu-$1.log; qemu_wait collects it.
qemu_start() {
	local name=$1
	shift
	rm -f "$dir/qemu-$name.log"
	"$QEMU" -enable-kvm -m 64 -nographic -nodefaults -serial null -bios "$BIOS" \
		-chardev "file,id=dbg,path=$dir/qemu-$name.log" \
		-device isa-debugcon,iobase=0x402,chardev=dbg -no-reboot "$@" \
		< /dev/null > /dev/null 2>&1 &
	qpid=$!
}

qemu_wait() {
	wait_no_boot "qemu $1" "$dir/qemu-$1.log" "$qpid"
	qpid=
}

# "Floppy,Hard Disk": the devices of the "Booting from ..." lines in order.
boot_sequence() {
	grep -o '^Booting from [^.]*' "$1" | sed 's/^Booting from //' | paste -sd, -
}

expect() {
	grep -Eq -- "$1" "$log" || fail "debug log lacks /$1/"
	echo "ok: $(grep -Em1 -- "$1" "$log")"
}

# Boot with -boot options $2.. and check the attempts: equal to QEMU's with
# the kvmvapic ROM off, else to $1. No "boot order:" list either: QEMU
# fills the bootorder file from bootindex properties only.
check_boot_order() {
	local want=$1 name label got ref
	shift
	label=${*:-"default order"}
	name=$(echo "order $*" | tr -c 'a-z0-9\n' _)
	$have_qemu && qemu_start "$name" -global kvm-apic.vapic=false "$@"
	boot_seabios -m 64 "$@"
	got=$(boot_sequence "$log")
	if $have_qemu; then
		qemu_wait "$name"
		ref=$(boot_sequence "$dir/qemu-$name.log")
		[ "$ref" = "$want" ] || echo "note: QEMU (vapic off), $label: '$ref', not '$want'"
		want=$ref
	fi
	[ "$got" = "$want" ] || fail "$label: boot attempts '$got', want '$want'"
	! grep -q '^boot order:' "$log" || fail "$label: bootorder file not empty"
	echo "ok: $label: boot attempts $got"
}

boot_seabios -m 64
expect '^SeaBIOS \(version '
expect '^Running on QEMU \(i440fx\)'
expect '^Found QEMU fw_cfg'
expect '^QEMU fw_cfg DMA interface supported'
expect '^qemu/e820: addr 0x0000000000000000 len 0x[0-9a-f]+ \[RAM\]'
expect '^Moving pm_base to 0x600'
expect '^Found [0-9]+ PCI devices \(max PCI bus is 00\)'
expect '^PCI: init bdf=00:00.0 id=8086:1237'
expect '^PCI: init bdf=00:01.0 id=8086:7000'
expect '^PCI: init bdf=00:01.3 id=8086:7113'
expect '^PIIX3/PIIX4 init: elcr=00 0c'
expect '^Found 1 cpu\(s\)'
# The 128 KiB bios.bin build does not log its ACPI table parsing.
case "$BIOS" in
*bios-256k.bin) expect '^ACPI: parse DSDT at 0x[0-9a-f]+' ;;
esac
expect '^e820 map has [0-9]+ items'
expect '^No bootable device'
# The banner also reached the serial console (sercon, -nographic).
grep -q "SeaBIOS (version" "$out" || fail "banner not on the serial console"
echo "ok: banner on the serial console"
# SeaBIOS reads and writes port 0x92 (fast A20): a device answers it.
! grep -q "unassigned port .* 0x92 " "$gelog" ||
	fail "port 0x92 unclaimed: $(grep -m1 0x92 "$gelog")"
echo "ok: port 0x92 claimed"
unclaimed=$(grep -o 'unassigned port [a-z]* 0x[0-9a-f]*' "$gelog" | awk '{print $3 " " $4}' |
	sort -u | paste -sd, -)
echo "info: unclaimed ports (first 16 reports): $unclaimed"

# Boot attempts for the default order ("cad") and -boot order=a / c.
check_boot_order "Floppy,Hard Disk"
check_boot_order "Floppy,Hard Disk" -boot order=a
check_boot_order "Floppy,Hard Disk" -boot order=c
if $have_qemu; then
	qemu_start vapic
	qemu_wait vapic
	echo "info: QEMU with its kvmvapic.bin ROM: boot attempts" \
		"$(boot_sequence "$dir/qemu-vapic.log")"
fi

# Two CPUs and RAM above 4 GiB: the e820 file and CPU count reach SeaBIOS.
boot_seabios -m 4200M -smp 2
expect '^Found 2 cpu\(s\)'
expect '^qemu/e820: addr 0x0000000100000000 len 0x[0-9a-f]+ \[RAM\]'
echo "SeaBIOS boot passed"
