# kit-lib.sh: shell helpers to run the guest test kit under a VMM (sourced
# by kit-qemu.sh and the minikvm runner). The VMM must take QEMU-style
# -kernel/-append options and write COM1 to stdout/stdin.
#
#   run_kit VMM_CMD CASE [KERNEL_ARGS...]
#
# VMM_CMD     the VMM command line without -kernel/-append, e.g.
#             "qemu-system-x86_64 -enable-kvm -m 128 -smp 2 -nographic -nodefaults
#              -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4"
# CASE        kit case or comma-separated list (serial,cmos,timers,kvmclock,smp,pci,
#             acpi,demo) or "all"
# KERNEL_ARGS extra kernel command line words, e.g. cpus=4 exit=0x501
#
# Environment: KIT_ELF (default build/guest/testkit.elf), KIT_TIMEOUT (s, default
# 60), KIT_LOG_DIR (default build/tests/kit), KIT_TAG (log name prefix),
# KIT_INPUT (line sent to COM1 once the guest prints "serial: ready").
# Checks every "testkit: <case>: PASS" line, "testkit: result PASS" and the
# exit status: 0 when the list ends in acpi or demo (ACPI S5 poweroff),
# otherwise 1 (isa-debug-exit, value 0). Returns 0 on success; on failure
# prints the reason and the log's testkit lines.

KIT_ALL_CASES="serial,cmos,timers,kvmclock,smp,pci,acpi"

kit_expected_status() {
	case ",$1," in
	*,acpi,*|*,demo,*) echo 0 ;;
	*) echo 1 ;;
	esac
}

# Feed KIT_INPUT into the fifo once the log shows the serial case is ready;
# hold the fifo open until the VMM is done (marker file) or the timeout.
kit_feeder() {
	local fifo=$1 log=$2 done=$3 t=$4 sent=0 i
	exec 3>"$fifo"
	for ((i = 0; i < t * 10; i++)); do
		[ -e "$done" ] && break
		if [ $sent = 0 ] && grep -aq 'testkit: serial: ready' "$log" 2>/dev/null; then
			printf '%s\n' "${KIT_INPUT:-hello from the kit harness}" >&3
			sent=1
		fi
		sleep 0.1
	done
	exec 3>&-
}

run_kit() {
	local vmm_cmd=$1 kcase=$2
	shift 2
	local kit=${KIT_ELF:-build/guest/testkit.elf} t=${KIT_TIMEOUT:-60}
	local dir=${KIT_LOG_DIR:-build/tests/kit}
	local log="$dir/${KIT_TAG:-}${kcase//,/+}.log"
	local list=$kcase want got start elapsed c rc=0 tmp fifo
	[ "$kcase" = all ] && list=$KIT_ALL_CASES
	want=$(kit_expected_status "$list")
	mkdir -p "$dir"
	tmp=$(mktemp -d)
	fifo=$tmp/stdin
	mkfifo "$fifo"
	: >"$log"
	kit_feeder "$fifo" "$log" "$tmp/done" "$t" &
	local feeder=$!
	start=$(date +%s.%N)
	# shellcheck disable=SC2086  # VMM_CMD is a word list on purpose
	timeout "$t" $vmm_cmd -kernel "$kit" -append "case=$kcase${*:+ $*}" <"$fifo" >"$log" 2>&1
	got=$?
	elapsed=$(echo "$(date +%s.%N) - $start" | bc)
	touch "$tmp/done"
	wait "$feeder" 2>/dev/null
	rm -rf "$tmp"
	if [ "$got" = 124 ]; then
		echo "FAIL ${KIT_TAG:-}$kcase: timeout after ${t}s"
		rc=1
	elif [ "$got" != "$want" ]; then
		echo "FAIL ${KIT_TAG:-}$kcase: exit status $got, expected $want"
		rc=1
	fi
	for c in ${list//,/ }; do
		if ! grep -aq "testkit: $c: PASS" "$log"; then
			[ $rc = 0 ] && echo "FAIL $kcase: no 'testkit: $c: PASS' line"
			rc=1
		fi
	done
	if ! grep -aq 'testkit: result PASS' "$log"; then
		[ $rc = 0 ] && echo "FAIL $kcase: no 'testkit: result PASS' line"
		rc=1
	fi
	if [ $rc = 0 ]; then
		printf 'PASS %s%s (%.1fs, status %s)\n' "${KIT_TAG:-}" "$kcase" "$elapsed" "$got"
	else
		echo "---- $log (testkit lines):"
		grep -a 'testkit' "$log" | sed 's/^.*testkit:/testkit:/' | tail -40
		echo "----"
	fi
	return $rc
}

# run_kit_fail VMM_CMD CASE PATTERN [KERNEL_ARGS...]: a negative check. The
# case must fail: exit status 3 (isa-debug-exit, value 1), a
# "testkit: CASE: FAIL: ..." line matching PATTERN and "testkit: result FAIL".
run_kit_fail() {
	local vmm_cmd=$1 kcase=$2 pattern=$3
	shift 3
	local kit=${KIT_ELF:-build/guest/testkit.elf} t=${KIT_TIMEOUT:-60}
	local dir=${KIT_LOG_DIR:-build/tests/kit} got
	local log="$dir/${KIT_TAG:-}fail-${kcase//,/+}.log"
	mkdir -p "$dir"
	# shellcheck disable=SC2086
	timeout "$t" $vmm_cmd -kernel "$kit" -append "case=$kcase${*:+ $*}" </dev/null >"$log" 2>&1
	got=$?
	if [ "$got" = 3 ] && grep -aq "testkit: $kcase: FAIL: .*$pattern" "$log" &&
	   grep -aq 'testkit: result FAIL' "$log"; then
		echo "PASS (expected failure) $kcase $*: $(grep -a "$kcase: FAIL" "$log" |
			sed 's/^.*testkit:/testkit:/')"
		return 0
	fi
	echo "FAIL $kcase $*: expected a failure matching '$pattern' with status 3, got $got"
	grep -a 'testkit' "$log" | sed 's/^.*testkit:/testkit:/' | tail -20
	return 1
}
