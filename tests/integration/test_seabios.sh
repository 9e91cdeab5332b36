#!/bin/bash
# SeaBIOS boots through the i440FX/PIIX3 chipset model: reset vector in the
# read-only BIOS slot, PAM shadowing, PCI config mechanism #1, fw_cfg with
# DMA (e820, ACPI table loader) and reaches "No bootable device". Asserts
# on its debug log (port 0x402).
set -u
M=${MINIKVM:-build/minikvm}
BIOS=${BIOS:-/usr/share/seabios/bios-256k.bin}
TIMEOUT=${TIMEOUT:-120}
dir=$(mktemp -d /tmp/minikvm-seabios.XXXXXX)
log=$dir/seabios.log
out=$dir/console.log
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	echo "--- debug log (tail)"; tail -40 "$log" 2>/dev/null
	echo "--- console (tail)"; tail -20 "$out" 2>/dev/null | cat -v
	exit 1
}
[ -x "$M" ] || fail "$M not built"
[ -r "$BIOS" ] || fail "$BIOS missing (Debian package seabios)"

# Boot SeaBIOS with extra options until "No bootable device" (SeaBIOS
# then waits forever), leaving its debug log in $log.
boot_seabios() {
	local start
	rm -f "$log" "$out"
	start=$(date +%s)
	"$M" -nographic -bios "$BIOS" -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-debugcon "file:$log" "$@" < /dev/null > "$out" 2>&1 &
	pid=$!
	while ! grep -q "No bootable device" "$log" 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || fail "minikvm $* exited early"
		[ $(( $(date +%s) - start )) -lt "$TIMEOUT" ] ||
			fail "minikvm $*: no 'No bootable device' in ${TIMEOUT}s"
		sleep 0.5
	done
	echo "minikvm $*: reached 'No bootable device' in $(( $(date +%s) - start ))s"
	kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
}

expect() {
	grep -Eq -- "$1" "$log" || fail "debug log lacks /$1/"
	echo "ok: $(grep -Em1 -- "$1" "$log")"
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

# Two CPUs and RAM above 4 GiB: the e820 file and CPU count reach SeaBIOS.
boot_seabios -m 4200M -smp 2
expect '^Found 2 cpu\(s\)'
expect '^qemu/e820: addr 0x0000000100000000 len 0x[0-9a-f]+ \[RAM\]'
echo "SeaBIOS boot passed"
