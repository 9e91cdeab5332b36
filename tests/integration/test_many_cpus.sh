#!/bin/bash
# Many vCPUs: -smp up to the KVM limit boots the guest test kit. Around 255
# the ACPI MADT switches from xAPIC to x2APIC entries, the MP table is
# omitted and KVM's x2APIC API is turned on; each run must reach "result
# PASS" and power off through ACPI S5 with exit status 0. The kit's APs are
# not started by these cases, so the idle vCPU threads cost little.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/kit-lib.sh
M=build/minikvm
[ -x $M ] && [ -f build/guest/testkit.elf ] || { echo "FAIL: build first (make)"; exit 1; }

fails=0
run() { run_kit "$@" || fails=$((fails + 1)); }
vmm() { echo "$M -m 512 -smp $1 -nographic -nodefaults -serial stdio"; }

# A clear one-line refusal (exit status 1) mentioning pattern.
expect_refusal() {
	local pattern=$1 err status
	shift
	err=$("$M" "$@" -kernel build/guest/testkit.elf -nographic -nodefaults -serial none \
	      2>&1 >/dev/null)
	status=$?
	if [ $status -eq 1 ] && printf '%s' "$err" | grep -q -- "$pattern"; then
		echo "PASS refused: $* -> $err"
	else
		echo "FAIL: '$*' exited $status (want 1), stderr '$err' (want '$pattern')"
		fails=$((fails + 1))
	fi
}

for n in 254 255 256 300; do
	KIT_TAG=smp$n- run "$(vmm $n)" acpi,demo
	grep -a 'CPUs in the MADT' "build/tests/kit/smp$n-acpi+demo.log" | sed 's/^.*testkit:/  kit:/'
done

# The KVM limit itself (1024 here), unless this host's KVM allows fewer.
limit_err=$("$M" -smp 1024 -m 64 -kernel /nonexistent 2>&1 >/dev/null)
if printf '%s' "$limit_err" | grep -q "KVM limit"; then
	echo "SKIP -smp 1024: $limit_err"
else
	KIT_TIMEOUT=120 KIT_TAG=smp1024- run "$(vmm 1024)" acpi,demo
	grep -a 'CPUs in the MADT' build/tests/kit/smp1024-acpi+demo.log | sed 's/^.*testkit:/  kit:/'
fi

# Firmware boot: SeaBIOS wakes every AP (x2APIC IDs above 254 included) and
# loads the fw_cfg ACPI tables; it then waits at "No bootable device".
BIOS=/usr/share/seabios/bios-256k.bin
if [ -r $BIOS ]; then
	sblog=$(mktemp /tmp/minikvm-smp.XXXXXX)
	"$M" -smp 300 -m 256 -nographic -bios $BIOS -debugcon "file:$sblog" </dev/null \
		>/dev/null 2>&1 &
	sbpid=$!
	for _ in $(seq 120); do
		grep -q "No bootable device" "$sblog" 2>/dev/null && break
		kill -0 $sbpid 2>/dev/null || break
		sleep 0.5
	done
	kill $sbpid 2>/dev/null
	wait $sbpid 2>/dev/null
	if grep -q "Found 300 cpu(s)" "$sblog" && grep -q "ACPI: parse DSDT" "$sblog" &&
	   grep -q "No bootable device" "$sblog"; then
		echo "PASS SeaBIOS -smp 300: $(grep 'Found 300' "$sblog")"
	else
		echo "FAIL SeaBIOS -smp 300:"; tail -20 "$sblog"
		fails=$((fails + 1))
	fi
	rm -f "$sblog"
else
	echo "SKIP SeaBIOS -smp 300: $BIOS missing"
fi

expect_refusal "smp" -smp 1025
expect_refusal "x2apic" -smp 300 -cpu host,-x2apic

[ $fails = 0 ] || { echo "many CPUs: $fails check(s) failed"; exit 1; }
echo "many CPUs: all runs passed"
