#!/bin/bash
# virtio-net-pci option errors: each bad -device virtio-net-pci / -nic /
# -netdev socket / -netdev user,guestfwd= spec
# ends with exit status 1 and exactly one line naming the problem, before
# the guest runs (no KVM work). MINIKVM=path overrides build/minikvm.
set -u
cd "$(dirname "$0")/../.." || exit 1
M=${MINIKVM:-build/minikvm}
[ -x "$M" ] || { echo "FAIL: build first (make)"; exit 1; }
BASE=(-m 64 -nographic -nodefaults -serial none -kernel build/guest/testkit.elf)
fails=0

expect_error() {
	local pattern=$1 err status
	shift
	err=$(timeout 20 "$M" "${BASE[@]}" "$@" 2>&1 >/dev/null)
	status=$?
	if [ $status -ne 1 ] || [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ] ||
	   ! printf '%s' "$err" | grep -q -- "$pattern"; then
		echo "FAIL: '$*' -> status $status: $err (wanted '$pattern')"
		fails=$((fails + 1))
	else
		echo "ok: $* -> $err"
	fi
}

N=(-netdev user,id=n0)
expect_error "netdev=ID is required" -device virtio-net-pci
expect_error "no -netdev with id=zz" -device virtio-net-pci,netdev=zz
expect_error "netdev n0 is already in use" "${N[@]}" -device virtio-net-pci,netdev=n0 \
	-device virtio-net-pci,netdev=n0
expect_error "invalid mac '01:00:00:00:00:01'" "${N[@]}" \
	-device virtio-net-pci,netdev=n0,mac=01:00:00:00:00:01
expect_error "invalid mac 'zz'" "${N[@]}" -device virtio-net-pci,netdev=n0,mac=zz
expect_error "mq must be on or off" "${N[@]}" -device virtio-net-pci,netdev=n0,mq=maybe
expect_error "csum must be on or off" "${N[@]}" -device virtio-net-pci,netdev=n0,csum=2
expect_error "vectors must be a number" "${N[@]}" -device virtio-net-pci,netdev=n0,vectors=99
expect_error "rx_queue_size and tx_queue_size must be powers of 2" "${N[@]}" \
	-device virtio-net-pci,netdev=n0,rx_queue_size=100
expect_error "rx_queue_size and tx_queue_size must be powers of 2" "${N[@]}" \
	-device virtio-net-pci,netdev=n0,tx_queue_size=2048
expect_error "host_mtu must be a number from 68 to 65535" "${N[@]}" \
	-device virtio-net-pci,netdev=n0,host_mtu=67
expect_error "host_mtu must be a number from 68 to 65535" "${N[@]}" \
	-device virtio-net-pci,netdev=n0,host_mtu=65536
expect_error "host_mtu must be a number from 68 to 65535" "${N[@]}" \
	-device virtio-net-pci,netdev=n0,host_mtu=big
expect_error "invalid addr" "${N[@]}" -device virtio-net-pci,netdev=n0,addr=40
expect_error "model e1000 is not supported" -nic user,model=e1000
expect_error "invalid mac" -nic user,mac=52:54:00:12:34
# -netdev user,guestfwd=: cmd:, tcp: and unix: targets; a socket target
# must be reachable at startup (QEMU's chardev).
expect_error "the target must be cmd:COMMAND, tcp:HOST:PORT or unix:PATH" \
	-netdev user,id=u0,guestfwd=tcp:10.0.2.100:80-udp:127.0.0.1:80
expect_error "(bad port in the tcp: target)" \
	-netdev user,id=u0,guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:x
expect_error "(the tcp: target needs HOST:PORT)" \
	-netdev user,id=u0,guestfwd=tcp:10.0.2.100:80-tcp:80
expect_error "(bad unix socket path)" -netdev user,id=u0,guestfwd=tcp:10.0.2.100:80-unix:
expect_error "guest forwarding rule 'tcp:10.0.2.100:80-tcp:127.0.0.1:1': cannot connect to 127.0.0.1:1: Connection refused" \
	-netdev user,id=u0,guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:1
expect_error "cannot connect to /nonexistent/fwd.sock: No such file or directory" \
	-netdev user,id=u0,guestfwd=tcp:10.0.2.100:80-unix:/nonexistent/fwd.sock
expect_error "guest forwarding rule 'udp:10.0.2.100:80-cmd:cat' (bad protocol" \
	-netdev user,id=u0,guestfwd=udp:10.0.2.100:80-cmd:cat
expect_error "(bad port)" -netdev user,id=u0,guestfwd=tcp:10.0.2.100:x-cmd:cat
expect_error "could not set up guest forwarding rule 'tcp:10.0.2.2:80-cmd:cat'" \
	-netdev user,id=u0,guestfwd=tcp:10.0.2.2:80-cmd:cat
# -netdev socket: the mcast= and fd= modes.
expect_error "not a multicast address" -netdev socket,id=s0,mcast=10.1.1.1:5000
expect_error "fd=99 is not an open file descriptor" -netdev socket,id=s0,fd=99
expect_error "fd=0 is not a stream or datagram socket" -netdev socket,id=s0,fd=0 </dev/null
expect_error "exactly one of listen=, connect=, udp=, mcast= and fd=" \
	-netdev socket,id=s0,mcast=239.255.77.1:5000,connect=127.0.0.1:1

[ $fails -eq 0 ] && echo "virtio-net-pci options: all checks passed"
[ $fails -eq 0 ]
