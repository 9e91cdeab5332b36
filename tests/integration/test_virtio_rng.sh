#!/bin/bash
# virtio-rng-pci end to end: the kit's CPL3 virtio driver (case=virtio-rng)
# over the modern capabilities (polled, chained, indirect, 70,000 requests
# wrapping the ring indexes, MSI-X with masking, EVENT_IDX, INTx, a
# descriptor loop -> DEVICE_NEEDS_RESET -> reset -> working again) and over
# the legacy I/O BAR, on minikvm and on QEMU 7.2; the same over a packed
# virtqueue (packed=on on the device, packed=1 for the kit: chains, indirect,
# 70,000 requests over thousands of wrap-counter laps, event suppression
# both ways, a bad indirect table -> DEVICE_NEEDS_RESET, a 6-entry queue);
# plus the -device option errors. MINIKVM=path overrides build/minikvm.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/kit-lib.sh
M=${MINIKVM:-build/minikvm}
[ -x "$M" ] && [ -f build/guest/testkit.elf ] || { echo "FAIL: build first (make)"; exit 1; }

BASE="-m 128 -nographic -nodefaults -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4"
VMM="$M $BASE -smp 2 -d guest_errors -device virtio-rng-pci"
QEMU="qemu-system-x86_64 -enable-kvm $BASE -device virtio-rng-pci"
fails=0
run() { run_kit "$@" || fails=$((fails + 1)); }
check() {	# check NAME COMMAND...: the command must succeed
	local name=$1
	shift
	if "$@"; then echo "PASS $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}

KIT_TAG=minikvm- run "$VMM" virtio-rng
log=build/tests/kit/minikvm-virtio-rng.log
check "minikvm: the descriptor loop is logged once" \
	test "$(grep -c 'device needs reset' "$log")" = 1
KIT_TAG=minikvm-legacy- run "$VMM" virtio-rng mode=legacy
KIT_TAG=minikvm-slot5- run "$M $BASE -device virtio-rng-pci,addr=5" virtio-rng
check "minikvm: addr=5 puts the device at 00:05.0" \
	grep -aq 'virtio-rng: device at 00:05.0' build/tests/kit/minikvm-slot5-virtio-rng.log
KIT_TAG=minikvm-packed- run "$VMM,packed=on" virtio-rng packed=1
check "minikvm: the bad packed indirect table is logged once" \
	test "$(grep -c 'not a multiple of 16; device needs reset' \
		build/tests/kit/minikvm-packed-virtio-rng.log)" = 1
# Without packed=on the device offers no packed rings (QEMU's default).
KIT_TAG=minikvm-nopacked- run_kit "$VMM" virtio-rng packed=1 >/dev/null
check "minikvm: RING_PACKED not offered by default" \
	grep -aq 'RING_PACKED not offered' build/tests/kit/minikvm-nopacked-virtio-rng.log
KIT_TAG=minikvm-pci- run "$VMM" pci,virtio-rng
# A system reset returns the device (and its BARs) to power-on state: the
# second boot drives it again from scratch.
KIT_TAG=minikvm-reset- run "$VMM" virtio-rng,reset method=cf9
check "minikvm: virtio-rng passes on both boots around a reset" \
	test "$(grep -ac 'virtio-rng: PASS' build/tests/kit/minikvm-reset-virtio-rng+reset.log)" = 2

if command -v qemu-system-x86_64 >/dev/null; then
	KIT_TAG=qemu- run "$QEMU" virtio-rng
	KIT_TAG=qemu-legacy- run "$QEMU" virtio-rng mode=legacy
	KIT_TAG=qemu-packed- run "$QEMU,packed=on" virtio-rng packed=1
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
cli_error "invalid addr" -device virtio-rng-pci,addr=zz
cli_error "invalid addr" -device virtio-rng-pci,addr=0x20
cli_error "unknown or bad parameter 'foo'" -device virtio-rng-pci,foo=1
cli_error "packed must be on or off" -device virtio-rng-pci,packed=maybe
cli_error "cannot add" -device virtio-rng-pci,addr=1
cli_error "unsupported device 'virtio-rng-pcix'" -device virtio-rng-pcix

[ $fails = 0 ] || { echo "virtio-rng: $fails check(s) failed"; exit 1; }
echo "virtio-rng: all checks passed"
