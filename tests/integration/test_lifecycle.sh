#!/bin/bash
# test_lifecycle.sh: the VM lifecycle on minikvm, with QEMU 7.2 as the
# reference where noted. Guest resets through the i8042, the 0xCF9 reset
# control register and a triple fault (with -no-reboot: exit status 0;
# without: the kernel is reloaded and the second boot finds its CMOS
# marker), a fatal vCPU error (status 3 and a register dump), unassigned
# I/O (the guest cannot kill the VMM; the log is rate-limited), vCPU thread
# names, SIGTERM, Ctrl-a x on -nographic, and the serial backends file:,
# unix:...,server,nowait and pty. One PASS/FAIL line per check; exit 1
# when any check fails. Run from anywhere after `make`.
cd "$(dirname "$0")/../.." || exit 1
M=build/minikvm
KIT=build/guest/testkit.elf
QEMU=${QEMU:-qemu-system-x86_64}
[ -x $M ] && [ -f $KIT ] || { echo "FAIL: build first (make)"; exit 1; }
command -v "$QEMU" >/dev/null || { echo "FAIL: $QEMU missing (run scripts/setup)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 missing"; exit 1; }

LOGS=build/tests/lifecycle
rm -rf "$LOGS"
mkdir -p "$LOGS"
TMP=$(mktemp -d /tmp/lifecycle.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
EXITDEV="-device isa-debug-exit,iobase=0xf4,iosize=4"
MVM="$M -m 128 -smp 2 -nographic -nodefaults $EXITDEV"
QVM="$QEMU -enable-kvm -m 128 -smp 2 -nographic -nodefaults $EXITDEV"
fails=0

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
# check NAME LOG CONDITION-COMMAND...: PASS or FAIL with the log's tail (none
# when LOG is empty)
# (locals start with _ so that eval'd conditions see the caller's names)
check() {
	local _name=$1 _log=$2
	shift 2
	if "$@"; then
		pass "$_name"
	else
		fail "$_name${_log:+ (log $_log)}"
		[ -f "$_log" ] && tail -15 "$_log" | sed 's/^/    | /'
	fi
}
count() { grep -ac -- "$1" "$2"; }

# ---- resets ----
# reset_run TAG VMM_CMD METHOD reboot|noreboot: writes LOGS/TAG.log, .rc
reset_run() {
	local tag=$1 vmm=$2 method=$3 mode=$4 extra=""
	[ "$mode" = noreboot ] && extra=-no-reboot
	# shellcheck disable=SC2086
	timeout 40 $vmm $extra -serial stdio -kernel $KIT -append "case=reset method=$method" \
		</dev/null >"$LOGS/$tag.log" 2>&1
	echo $? >"$LOGS/$tag.rc"
}

reset_verdict() {
	local tag=$1 method=$2 mode=$3 log=$LOGS/$1.log rc
	rc=$(cat "$LOGS/$tag.rc")
	if [ "$mode" = noreboot ]; then
		check "$tag: -no-reboot exits 0 at the reset via $method (status $rc)" "$log" \
			eval '[ "$rc" = 0 ] && grep -aq "testkit: reset: resetting via $method" "$log" &&
			      [ "$(count "testkit: boot via" "$log")" = 1 ]'
	else
		check "$tag: reset via $method reboots, second boot passes (status $rc)" "$log" \
			eval '[ "$rc" = 1 ] && [ "$(count "testkit: boot via" "$log")" = 2 ] &&
			      [ "$(count "resetting via $method" "$log")" = 1 ] &&
			      grep -aq "testkit: reset: PASS (second boot)" "$log" &&
			      grep -aq "testkit: result PASS" "$log"'
		# a reset restores the power-on state: the second boot must find
		# the PICs, IOAPIC, PIT and kvmclock MSR as the first boot did
		# (the first boot leaves an IOAPIC pin unmasked and PIT ch0 in mode 4)
		local s1 s2
		s1=$(grep -a "testkit: reset: boot state:" "$log" | sed -n 1p | tr -d '\r')
		s2=$(grep -a "testkit: reset: boot state:" "$log" | sed -n 2p | tr -d '\r')
		check "$tag: second boot finds the power-on device state ($log)" "" \
			eval '[ -n "$s1" ] && [ "$s1" = "$s2" ] ||
			      { echo "    first:  ${s1#*state: }"; echo "    second: ${s2#*state: }"; false; }'
	fi
}

# QEMU takes seconds per boot (SeaBIOS at emulated CPL0): run its resets in
# the background, two at a time, while the minikvm checks go on.
qemu_resets() {
	local m
	for m in kbd cf9 triple; do
		reset_run "qemu-$m-noreboot" "$QVM" "$m" noreboot &
		reset_run "qemu-$m-reboot" "$QVM" "$m" reboot
		wait
	done
}
qemu_resets &
qemu_pid=$!

for m in kbd cf9 triple; do
	for mode in noreboot reboot; do
		reset_run "minikvm-$m-$mode" "$MVM" "$m" $mode
		reset_verdict "minikvm-$m-$mode" "$m" $mode
	done
done
# -boot once= applies to the first boot only (QEMU): d (3) first, then order=c (2)
log=$LOGS/minikvm-boot-once.log
timeout 20 $MVM -boot once=d,order=c -serial stdio -kernel $KIT -append "case=reset method=cf9" \
	</dev/null >"$log" 2>&1
check "minikvm: -boot once=d,order=c: CMOS boot devices 03 then 02" "$log" \
	eval '[ "$(grep -a "CMOS boot devices" "$log" | tr -d "\r" | sed "s/.*devices //" |
		  tr "\n" " ")" = "03 0 02 0 " ]'

# the reload on reset through the other boot protocols (Linux bzImage, Multiboot)
for k in testkit.bzImage testkit-mb.elf; do
	log=$LOGS/minikvm-reset-$k.log
	timeout 20 $MVM -serial stdio -kernel build/guest/$k -append "case=reset,pci method=cf9" \
		</dev/null >"$log" 2>&1
	rc=$?
	check "minikvm: $k is reloaded on reset and boots again (status $rc)" "$log" \
		eval '[ $rc = 1 ] && [ "$(count "testkit: boot via" "$log")" = 2 ] &&
		      grep -aq "testkit: reset: PASS (second boot)" "$log" &&
		      grep -aq "testkit: result PASS" "$log"'
done

# ---- fatal vCPU error ----
log=$LOGS/minikvm-fatal.log
timeout 20 $MVM -serial stdio -kernel $KIT -append "case=fatal" </dev/null >"$log" 2>&1
rc=$?
check "minikvm: fatal (code in MMIO) exits 3 with a register dump (status $rc)" "$log" \
	eval '[ $rc = 3 ] && grep -aq "testkit: fatal: jumping to MMIO" "$log" &&
	      grep -aq "vCPU 0 state:" "$log" && grep -aq "RIP=00000000febf0000" "$log" &&
	      ! grep -aq "testkit: result" "$log"'

# ---- unassigned I/O ----
log=$LOGS/minikvm-badio.log
dlog=$LOGS/minikvm-badio-guest-errors.log
timeout 20 $MVM -serial stdio -d guest_errors -D "$dlog" -kernel $KIT -append "case=badio" \
	</dev/null >"$log" 2>&1
rc=$?
check "minikvm: badio passes and the VMM survives (status $rc)" "$log" \
	eval '[ $rc = 1 ] && grep -aq "testkit: badio: PASS" "$log" &&
	      grep -aq "testkit: result PASS" "$log"'
lines=$(wc -l <"$dlog" 2>/dev/null || echo 0)
check "minikvm: -D log names port 0x2345 and the MMIO hole, $lines lines for 4000+ accesses" \
	"$dlog" eval 'grep -q "unassigned port.*0x2345" "$dlog" &&
		      grep -q "unassigned MMIO.*0xfebf00" "$dlog" && [ "$lines" -lt 40 ] &&
		      grep -q "suppressed" "$dlog"'

# ---- vCPU thread names, SIGTERM ----
# start_sleeper LOG ARGS...: minikvm in the background running case=sleep;
# waits for the "sleeping" line; sets $pid
start_sleeper() {
	local log=$1 i
	shift
	: >"$log"
	# shellcheck disable=SC2086
	$MVM -serial stdio "$@" -kernel $KIT </dev/null >"$log" 2>&1 &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		grep -aq "testkit: sleep: sleeping" "$log" && return 0
		sleep 0.05
	done
	return 1
}
# wait_exit PID SECONDS: status of PID, or 124 (and kill it) after SECONDS
wait_exit() {
	local p=$1 t=$2 i
	for ((i = 0; i < t * 20; i++)); do
		kill -0 "$p" 2>/dev/null || { wait "$p"; return; }
		sleep 0.05
	done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 124
}

log=$LOGS/minikvm-threads.log
if start_sleeper "$log" -smp 3 -append "case=sleep ms=3000"; then
	names=$(cat /proc/$pid/task/*/comm 2>/dev/null | sort | tr '\n' ',')
	check "minikvm: vCPU threads named CPU n/KVM (threads: ${names%,})" "$log" \
		eval '[[ ,$names == *",CPU 0/KVM,"* && ,$names == *",CPU 1/KVM,"* &&
		         ,$names == *",CPU 2/KVM,"* && ,$names != *",CPU 3/KVM,"* ]]'
else
	fail "minikvm: -smp 3 sleep case never started (log $log)"
fi
wait_exit "$pid" 20 >/dev/null

log=$LOGS/minikvm-sigterm.log
if start_sleeper "$log" -append "case=sleep ms=30000"; then
	t0=$(date +%s%N)
	kill -TERM "$pid"
	wait_exit "$pid" 5
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	check "minikvm: SIGTERM ends the VM with status 0 in $ms ms (status $rc)" "$log" \
		eval '[ $rc = 0 ] && [ $ms -lt 2000 ] && grep -aq "terminating on signal 15" "$log"'
else
	fail "minikvm: sleep case never started (log $log)"
	kill -KILL "$pid" 2>/dev/null
fi

# ---- serial backends and the Ctrl-a escape (python3 drives the I/O) ----
# Ctrl-a x: COM1 on stdio as mon:stdio (-nographic without -nodefaults)
log=$LOGS/minikvm-ctrl-a-x.log
check "minikvm: Ctrl-a x on -nographic quits with status 0 within 1 s" "$log" \
	python3 - "$log" $M -m 128 -nographic $EXITDEV -kernel $KIT -append "case=sleep ms=30000" <<'EOF'
import os, select, subprocess, sys, time
log = open(sys.argv[1], "wb")
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT)
buf = b""
deadline = time.time() + 10
while b"testkit:" not in buf and time.time() < deadline:
    if select.select([p.stdout], [], [], 0.2)[0]:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
p.stdin.write(b"\x01x")
p.stdin.flush()
t0 = time.time()
try:
    rc = p.wait(timeout=1.0)
except subprocess.TimeoutExpired:
    p.kill()
    rc = "timeout"
buf += p.stdout.read()
log.write(buf + b"\nstatus %s after %.3f s\n" % (str(rc).encode(), time.time() - t0))
sys.exit(0 if rc == 0 and b"testkit:" in buf else 1)
EOF

# -serial file:PATH
log=$LOGS/minikvm-serial-file.log
out=$LOGS/minikvm-serial-file.out
timeout 20 $MVM -serial "file:$out" -kernel $KIT -append "case=pci" </dev/null >"$log" 2>&1
rc=$?
check "minikvm: -serial file: gets the kit output (status $rc)" "$out" \
	eval '[ $rc = 1 ] && grep -aq "testkit: pci: PASS" "$out" &&
	      grep -aq "testkit: result PASS" "$out" && ! grep -aq "testkit:" "$log"'

# -serial unix:PATH,server,nowait with a client; -serial pty. The guest
# sleeps first so the reader is attached before the lines that matter.
serial_reader() {	# serial_reader unix|pty LOG MINIKVM-ARGS...
	python3 - "$@" <<'EOF'
import os, re, select, socket, subprocess, sys, time
kind, logname, args = sys.argv[1], sys.argv[2], sys.argv[3:]
log = open(logname, "wb")
p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT)
deadline = time.time() + 15
fd = None
try:
    if kind == "unix":
        path = re.search(r"unix:([^,]*)", " ".join(args)).group(1)
        while fd is None and time.time() < deadline:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                fd = s.fileno()
            except OSError:
                time.sleep(0.02)
    else:
        head, m = b"", None
        while not m and time.time() < deadline:
            if select.select([p.stdout], [], [], 0.2)[0]:
                head += os.read(p.stdout.fileno(), 4096)
            m = re.search(rb"char device redirected to (/dev/pts/\d+)", head)
        log.write(head)
        fd = os.open(m.group(1), os.O_RDWR | os.O_NOCTTY)
    got = b""
    while not re.search(rb"testkit: result \w+\r?\n", got) and time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            got += chunk
    log.write(b"---- read from the %s:\n" % kind.encode() + got)
    rc = p.wait(timeout=max(1, deadline - time.time()))
    log.write(b"status %d\n" % rc)
    sys.exit(0 if rc == 1 and b"testkit: pci: PASS" in got and
             b"testkit: result PASS" in got else 1)
finally:
    if p.poll() is None:
        p.kill()
EOF
}
log=$LOGS/minikvm-serial-unix.log
check "minikvm: -serial unix:...,server,nowait feeds a connecting client" "$log" \
	serial_reader unix "$log" $MVM -serial "unix:$TMP/com1.sock,server,nowait" \
	-kernel $KIT -append "case=sleep,pci ms=300"
log=$LOGS/minikvm-serial-pty.log
check "minikvm: -serial pty announces /dev/pts/N and carries the kit output" "$log" \
	serial_reader pty "$log" $MVM -serial pty -kernel $KIT -append "case=sleep,pci ms=300"

# ---- QEMU's resets ----
wait "$qemu_pid"
for m in kbd cf9 triple; do
	for mode in noreboot reboot; do
		reset_verdict "qemu-$m-$mode" "$m" $mode
	done
done

if [ $fails != 0 ]; then
	echo "lifecycle: $fails check(s) failed"
	exit 1
fi
echo "lifecycle: all checks passed"
