#!/bin/bash
# Boots the guest test kit on minikvm for every case and through both of
# its boot entries, with several vCPU counts and RAM sizes.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/kit-lib.sh
M=build/minikvm
[ -x $M ] && [ -f build/guest/testkit.elf ] || { echo "FAIL: build first (make)"; exit 1; }

VMM="$M -m 128 -smp 2 -nographic -nodefaults -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4"
fails=0
run() { run_kit "$@" || fails=$((fails + 1)); }

for c in serial cmos timers kvmclock smp pci acpi demo all; do
	KIT_TAG=minikvm- run "$VMM" "$c"
done
KIT_TAG=minikvm-pvh- KIT_ELF=build/guest/testkit-pvh.elf run "$VMM" pci,kvmclock,acpi
KIT_TAG=minikvm-mb- KIT_ELF=build/guest/testkit-mb.elf run "$VMM" pci,kvmclock,acpi
KIT_TAG=minikvm-bz- KIT_ELF=build/guest/testkit.bzImage run "$VMM" pci,timers,acpi
KIT_TAG=minikvm-smp1- run "${VMM/-smp 2/-smp 1}" smp,timers cpus=1
KIT_TAG=minikvm-smp8- run "${VMM/-smp 2/-smp 8}" smp cpus=8

# RAM sizes: the kit reports what its memory map says
for mem in 64M 3G 5G 64G; do
	KIT_TAG=minikvm-m$mem- run "${VMM/-m 128/-m $mem}" demo
	log=build/tests/kit/minikvm-m$mem-demo.log
	mib=$(sed -n 's/.*demo: RAM \([0-9]*\) MiB.*/\1/p' "$log")
	case $mem in
	64M) want=63 ;; 3G) want=3071 ;; 5G) want=5119 ;; 64G) want=65535 ;;
	esac
	if [ "$mib" != "$want" ]; then
		echo "FAIL -m $mem: kit saw ${mib:-no} MiB of RAM, expected $want"
		fails=$((fails + 1))
	else
		echo "PASS -m $mem: kit saw $mib MiB of RAM"
	fi
done

# a direct boot gets the MTRRs firmware would set: enabled, default write-back
if grep -aq 'demo: MTRR default type 0x806' build/tests/kit/minikvm-demo.log; then
	echo "PASS MTRRs enabled with default write-back"
else
	echo "FAIL MTRRs: $(grep -a 'MTRR' build/tests/kit/minikvm-demo.log)"; fails=$((fails + 1))
fi

[ $fails = 0 ] || { echo "kit on minikvm: $fails run(s) failed"; exit 1; }
echo "kit on minikvm: all runs passed"
