#!/bin/bash
# kvmclock while virtio-blk is busy (kit case kvmclock-io): 64 KiB random
# reads, 16 in flight, an MSI-X interrupt per completion batch, for 600 ms;
# kvmclock must stay monotonic, agree with PIT one-shots and keep its rate
# against the TSC. On minikvm and QEMU 7.2. On minikvm also, under strace,
# the interrupts go through the irqfd: no KVM_SIGNAL_MSI ioctl at all.
# MINIKVM=path overrides build/minikvm.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/kit-lib.sh
M=${MINIKVM:-build/minikvm}
[ -x "$M" ] && [ -f build/guest/testkit.elf ] || { echo "FAIL: build first (make)"; exit 1; }

BASE="-m 128 -nographic -nodefaults -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
img=$T/disk.raw
truncate -s 64M "$img"
DRIVE="-drive file=$img,format=raw,if=virtio"
fails=0
run() { run_kit "$@" || fails=$((fails + 1)); }

KIT_TAG=minikvm- run "$M $BASE -smp 2 $DRIVE" kvmclock-io
if command -v qemu-system-x86_64 >/dev/null; then
	KIT_TAG=qemu- run "qemu-system-x86_64 -enable-kvm $BASE -smp 2 $DRIVE" kvmclock-io
else
	echo "FAIL: qemu-system-x86_64 missing (run scripts/setup)"
	fails=$((fails + 1))
fi

# The MSI-X interrupts of the busy period reach the guest through irqfds.
if command -v strace >/dev/null; then
	log=build/tests/kit/minikvm-strace-kvmclock-io.log
	timeout 120 strace -f -e trace=ioctl -o "$T/strace" "$M" $BASE -smp 2 $DRIVE \
		-kernel "${KIT_ELF:-build/guest/testkit.elf}" -append "case=kvmclock-io" \
		</dev/null >"$log" 2>&1
	msi=$(grep -c 'KVM_SIGNAL_MSI, ' "$T/strace")
	irqfd=$(grep -c 'KVM_IRQFD, .* = 0' "$T/strace")
	irqs=$(grep -ao '[0-9]* MSI-X interrupts' "$log" | cut -d' ' -f1)
	if grep -aq 'testkit: kvmclock-io: PASS' "$log" && [ "$msi" = 0 ] && [ "$irqfd" -ge 1 ] &&
	   [ "${irqs:-0}" -gt 0 ]; then
		echo "PASS minikvm under strace: ${irqs} MSI-X interrupts, $irqfd irqfd(s)," \
			"0 KVM_SIGNAL_MSI"
	else
		echo "FAIL minikvm under strace: ${irqs:-no} interrupts, $irqfd irqfd(s)," \
			"$msi KVM_SIGNAL_MSI (log $log)"
		fails=$((fails + 1))
	fi
else
	echo "note: strace missing, irqfd path not checked"
fi

[ $fails = 0 ] || { echo "kvmclock-io: $fails check(s) failed"; exit 1; }
echo "kvmclock-io: all checks passed"
