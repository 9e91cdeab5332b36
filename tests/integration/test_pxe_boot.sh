#!/bin/bash
# Network boot through the virtio-net-pci option ROM: SeaBIOS sizes the ROM
# BAR (QEMU's rule: the file size rounded up to a power of two, 256 KiB for
# iPXE's efi-virtio.rom), copies and runs the iPXE ROM QEMU 7.2 loads by
# default (its device ID patched to the transitional 1af4:1000 as QEMU does),
# registers its BEV, and -boot n (or bootindex= through the fw_cfg
# bootorder file) boots it; iPXE then drives the NIC, gets DHCP from
# -netdev user and loads boot.bin over TFTP: a 512-byte PXE NBP run at
# 0:7c00 in real mode that prints on COM1 and leaves through isa-debug-exit
# (status 99). Reference: the same on QEMU 7.2 with TCG (the full boot).
#
# Where guest CPL0 is emulated by the host's KVM (the development machines
# here), iPXE stops right after "Press Ctrl-B for the iPXE command line":
# its first protected-mode IRET cannot be emulated by KVM (QEMU under KVM
# reports an emulation failure there, minikvm sees a triple fault). Then the
# test requires minikvm to reach that same point, and QEMU under KVM to stop
# short of the NBP too (else minikvm must boot it). Also: -nic gets the ROM,
# romfile= (empty) has none, a missing romfile is refused as by QEMU.
# MINIKVM=path, BIOS=path, QEMU=none (skip QEMU), TIMEOUT=seconds per run.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/bootsector-lib.sh
M=${MINIKVM:-build/minikvm}
BIOS=${BIOS:-/usr/share/seabios/bios-256k.bin}
TIMEOUT=${TIMEOUT:-150}
QEMU=${QEMU:-qemu-system-x86_64}
ROM=/usr/lib/ipxe/qemu/efi-virtio.rom
dir=$(mktemp -d /tmp/minikvm-pxe.XXXXXX)
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	rm -rf "$dir"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
die() { echo "FAIL: $*"; exit 1; }

[ -x "$M" ] || die "$M not built"
[ -r "$BIOS" ] || die "$BIOS missing (Debian package seabios)"
[ -r "$ROM" ] || die "$ROM missing (Debian package ipxe-qemu)"
command -v as >/dev/null && command -v ld >/dev/null || die "binutils missing"
have_qemu=false
if [ "$QEMU" != none ]; then
	command -v "$QEMU" >/dev/null || die "$QEMU missing (Debian package qemu-system-x86)"
	have_qemu=true
fi

# The NBP: a boot sector (bootsector-lib.sh) fetched over TFTP.
mkdir "$dir/tftp"
make_sector "$dir/tftp/boot.bin" "PXEBOOT: network boot sector runs"

# Milestones (console or debug log), timed from the start of each run.
MILESTONES=("Running option rom at" "Booting from ROM" "iPXE initialising devices...ok"
	"Press Ctrl-B for the iPXE command line" "PXEBOOT: network boot sector runs")

# start NAME STOP-REGEX CMD...: run CMD in the background with its console
# in $dir/NAME.con; `finish NAME...` polls the runs together until each
# one's console or debug log ($dir/NAME.log) matches its STOP-REGEX, it
# ends, or TIMEOUT passes; then $dir/NAME.rc holds the exit status
# ("stopped" or "timeout" when killed) and NAME.times the milestones' times.
start() {
	local name=$1
	echo "$2" > "$dir/$name.stop"
	shift 2
	date +%s%N > "$dir/$name.t0"
	: > "$dir/$name.times"
	"$@" </dev/null >"$dir/$name.con" 2>&1 &
	echo $! > "$dir/$name.pid"
	pids="$pids $!"
}
# poll NAME: one look at a run; returns 0 once it is over.
poll() {
	local name=$1 pid t0 now m
	pid=$(cat "$dir/$name.pid")
	t0=$(cat "$dir/$name.t0")
	now=$(date +%s%N)
	for m in "${MILESTONES[@]}"; do
		grep -qF -- "$m:" "$dir/$name.times" && continue
		cat "$dir/$name.con" "$dir/$name.log" 2>/dev/null | grep -aqF -- "$m" &&
			echo "$m: $(( (now - t0) / 1000000 )) ms" >> "$dir/$name.times"
	done
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid"
		echo $? > "$dir/$name.rc"
	elif cat "$dir/$name.con" "$dir/$name.log" 2>/dev/null |
		grep -aqE -- "$(cat "$dir/$name.stop")"; then
		kill "$pid"; wait "$pid" 2>/dev/null
		echo stopped > "$dir/$name.rc"
	elif [ $(( (now - t0) / 1000000000 )) -ge "$TIMEOUT" ]; then
		kill "$pid"; wait "$pid" 2>/dev/null
		echo timeout > "$dir/$name.rc"
	else
		return 1
	fi
	echo "$name: $(cat "$dir/$name.rc") after $(( ($(date +%s%N) - t0) / 1000000 )) ms" \
		"($(paste -sd';' "$dir/$name.times" | sed 's/;/; /g'))"
}
finish() {
	local left=("$@") next n
	while [ ${#left[@]} -gt 0 ]; do
		next=()
		for n in "${left[@]}"; do
			poll "$n" || next+=("$n")
		done
		left=("${next[@]}")
		[ ${#left[@]} -gt 0 ] && sleep 0.2
	done
}
minikvm() {
	local name=$1 stop=$2
	shift 2
	start "$name" "$stop" "$M" -m 64 -nographic -nodefaults -serial stdio -bios "$BIOS" \
		-device isa-debug-exit,iobase=0xf4,iosize=4 -debugcon "file:$dir/$name.log" \
		-d guest_errors -D "$dir/$name.ge" -no-reboot "$@"
}
qemu() {
	local name=$1 stop=$2 accel=$3
	shift 3
	start "$name" "$stop" "$QEMU" -accel "$accel" -m 64 -nographic -nodefaults \
		-serial stdio -bios "$BIOS" -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-chardev "file,id=dbg,path=$dir/$name.log" \
		-device isa-debugcon,iobase=0x402,chardev=dbg -no-reboot "$@"
}
show() {
	echo "--- $1 debug log (tail)"; tail -15 "$dir/$1.log" 2>/dev/null
	echo "--- $1 console (tail)"; tail -c 1500 "$dir/$1.con" | cat -v | tail -12
}
# has NAME FILE-SUFFIX REGEX...: every regex in $dir/NAME.SUFFIX.
has() {
	local name=$1 f=$dir/$1.$2 re ok=0
	shift 2
	for re in "$@"; do
		grep -aEq -- "$re" "$f" || { fail "$name: $(basename "$f") lacks /$re/"; ok=1; }
	done
	return $ok
}

NET="-netdev user,id=n0,tftp=$dir/tftp,bootfile=boot.bin"
NIC="-device virtio-net-pci,netdev=n0,addr=3"
DONE='PXEBOOT: network boot sector runs|KVM internal error|emulation failure'
# What SeaBIOS does with the ROM: BAR 6 sized 256 KiB, the ROM run at
# c000, its BEV looked up in the boot order, then booted.
ROM_LOG=('^PCI: map device bdf=00:03\.0  bar 6, addr [0-9a-f]+, size 00040000 \[mem\]'
	'^Running option rom at c000:0003' '^Searching bootorder for: /pci@i0cf8/\*@3$')
IPXE_CON=('iPXE \(http://ipxe\.org\) 00:03\.0 C000 PCI2\.10 PnP PMM'
	'Booting from ROM\.\.\.' 'iPXE \(PCI 00:03\.0\) starting execution\.\.\.ok'
	'iPXE initialising devices\.\.\.ok' 'Press Ctrl-B for the iPXE command line')
FULL_CON=('Configuring \(net0 52:54:00:12:34:56\)\.+ ok' 'Filename: boot\.bin'
	'boot\.bin : 512 bytes \[PXE-NBP' 'PXEBOOT: network boot sector runs')

# -boot n, the full path: minikvm and QEMU/KVM side by side (2 CPUs), then
# QEMU/TCG alone (it needs a CPU of its own to be quick).
# shellcheck disable=SC2086
minikvm m-n "$DONE" $NET $NIC -boot n
# shellcheck disable=SC2086
$have_qemu && qemu q-kvm-n "$DONE" kvm $NET $NIC -boot n
if $have_qemu; then finish m-n q-kvm-n; else finish m-n; fi
# shellcheck disable=SC2086
$have_qemu && { qemu q-tcg-n "$DONE" tcg $NET $NIC -boot n; finish q-tcg-n; }

if $have_qemu; then
	# The reference proves the NBP, TFTP directory and options right.
	if has q-tcg-n log "${ROM_LOG[@]}" && has q-tcg-n con "${IPXE_CON[@]}" "${FULL_CON[@]}" &&
		[ "$(cat "$dir/q-tcg-n.rc")" = 99 ]; then
		echo "PASS q-tcg-n: QEMU/TCG PXE-booted the NBP through iPXE (status 99)"
	else
		fail "q-tcg-n: QEMU/TCG reference did not PXE-boot (status $(cat "$dir/q-tcg-n.rc"))"
		show q-tcg-n
	fi
fi
if has m-n log "${ROM_LOG[@]}" && has m-n con "${IPXE_CON[@]}"; then
	echo "PASS m-n: SeaBIOS ran minikvm's iPXE ROM, booted its BEV; iPXE drove the NIC"
else
	show m-n
fi
if grep -aq 'PXEBOOT: network boot sector runs' "$dir/m-n.con"; then
	has m-n con "${FULL_CON[@]}" && [ "$(cat "$dir/m-n.rc")" = 99 ] &&
		echo "PASS m-n: minikvm PXE-booted the NBP (status 99)" ||
		{ fail "m-n: status $(cat "$dir/m-n.rc"), want 99"; show m-n; }
elif ! $have_qemu; then
	fail "m-n: no NBP output (and no QEMU to tell a host limit)"; show m-n
elif grep -aq 'PXEBOOT: network boot sector runs' "$dir/q-kvm-n.con"; then
	fail "m-n: QEMU/KVM PXE-boots the NBP on this host, minikvm does not"; show m-n
else
	has q-kvm-n con "${IPXE_CON[@]}" && echo "PASS m-n: the NBP is out of reach on this host's" \
		"KVM for both VMMs: QEMU/KVM stops at the same iPXE step" \
		"($(grep -aoE 'KVM internal error|emulation failure' "$dir/q-kvm-n.con" | head -1))," \
		"minikvm: $(cat "$dir/m-n.con" "$dir/m-n.ge" 2>/dev/null |
			grep -aoE 'triple fault|KVM internal error' | head -1)"
fi

# bootindex on the NIC (no -boot n): the bootorder file names it, SeaBIOS
# boots its BEV first. Stop at the first boot attempt, once its line is
# whole: the debug port writes a byte at a time, and stopping on
# "Booting from " alone once cut the line before "ROM...".
FIRST='^Booting from [^.]*\.\.\.'
# shellcheck disable=SC2086
minikvm m-idx "$FIRST" $NET ${NIC},bootindex=1
finish m-idx
has m-idx log '^1: /pci@i0cf8/ethernet@3/ethernet-phy@0$' "${ROM_LOG[@]}" &&
	[ "$(grep -m1 '^Booting from ' "$dir/m-idx.log")" = "Booting from ROM..." ] &&
	echo "PASS m-idx: bootindex=1 puts the NIC's BEV first" ||
	{ fail "m-idx: first boot attempt '$(grep -m1 '^Booting from ' "$dir/m-idx.log")'"; show m-idx; }
if $have_qemu; then
	# shellcheck disable=SC2086
	qemu q-idx "$FIRST" tcg $NET ${NIC},bootindex=1
	finish q-idx
	[ "$(grep -E '^[0-9]+: /|^Booting from ' "$dir/q-idx.log" | head -2)" = \
	  "$(grep -E '^[0-9]+: /|^Booting from ' "$dir/m-idx.log" | head -2)" ] &&
		echo "PASS idx: same bootorder entry and first boot attempt as QEMU" ||
		fail "idx: bootorder/boot attempt differ from QEMU's"
fi

# -nic gets QEMU's default ROM too.
minikvm m-nic "$FIRST" -nic "user,model=virtio-net-pci,tftp=$dir/tftp,bootfile=boot.bin" \
	-boot n
finish m-nic
has m-nic log '^Running option rom at c000:0003' '^Booting from ROM\.\.\.' &&
	echo "PASS m-nic: -nic's virtio-net-pci has the iPXE ROM"

# romfile= (empty): no ROM, nothing to boot from the network.
# shellcheck disable=SC2086
minikvm m-norom 'No bootable device' $NET ${NIC},romfile= -boot n
finish m-norom
if grep -q 'Running option rom\|Booting from ROM' "$dir/m-norom.log"; then
	fail "m-norom: an option ROM ran with romfile="
else
	has m-norom log 'No bootable device' && echo "PASS m-norom: romfile= means no option ROM"
fi

# A missing romfile: refused at startup (QEMU: 'failed to find romfile').
expect_romfile_error() {
	local name=$1 err rc
	shift
	err=$("$@" -display none -nodefaults $NET ${NIC},romfile=nonexistent.rom 2>&1 </dev/null)
	rc=$?
	if [ $rc = 1 ] && printf '%s' "$err" | grep -q 'failed to find romfile "nonexistent.rom"'
	then
		echo "PASS $name: $err"
	else
		fail "$name: status $rc, '$err'"
	fi
}
expect_romfile_error m-missing timeout 20 "$M" -m 64
$have_qemu && expect_romfile_error q-missing timeout 20 "$QEMU" -accel tcg -m 64

[ $fails -eq 0 ] && echo "PXE boot: all checks passed"
[ $fails -eq 0 ]
