#!/bin/bash
# virtio-net-pci end to end with the kit's CPL3 virtio-net driver
# (tests/guest/virtio_net.c), on minikvm and on QEMU 7.2:
#  - socket: two VMM processes (-netdev socket,listen= / connect=) swap 500
#    numbered frames of varied sizes each way (order and content checked);
#    the control queue turns promiscuous mode off and loads a MAC table, so
#    frames to a foreign MAC must be dropped and frames to a listed one
#    pass. minikvm <-> minikvm, minikvm <-> QEMU both ways (interop), the
#    legacy interface, the 10-byte header, a header in its own descriptor,
#    frames merged over small rx buffers (MRG_RXBUF) and a full rx ring.
#    The same exchange over UDP (udp=/localaddr=) and through a multicast
#    group on 127.0.0.1 (mcast=), minikvm <-> minikvm and with QEMU.
#  - user (slirp): DHCP must give 10.0.2.15, ARP for 10.0.2.2, then a TCP
#    client in the guest talks to a python server on the host's 127.0.0.1
#    through 10.0.2.2, to a command run by guestfwd=...-cmd: and to host
#    servers behind guestfwd=...-tcp: and -unix:. net-robust: odd tx chains (header only, a runt, a
#    70,000-byte frame, a split header) must not break the device (QEMU
#    sets NEEDS_RESET for the first; a reset must then bring it back).
#  - tap: inside a network namespace made here (root needed), the guest
#    ARPs and pings the host address, then the host pings the guest; with
#    queues=2 / mq=on the second queue pair is used too.
# Only loopback and namespace traffic. MINIKVM=path overrides build/minikvm.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/kit-lib.sh
M=${MINIKVM:-build/minikvm}
[ -x "$M" ] && [ -f build/guest/testkit.elf ] || { echo "FAIL: build first (make)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "FAIL: test_virtio_net.sh needs root (network namespaces, tap)"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "FAIL: qemu-system-x86_64 missing"; exit 1; }

BASE="-m 128 -nographic -nodefaults -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4"
MK="$M $BASE -d guest_errors"
QM="qemu-system-x86_64 -enable-kvm $BASE"
LOGS=${KIT_LOG_DIR:-build/tests/kit}
TMP=$(mktemp -d)
NS=mkvnet$$
fails=0
export KIT_TIMEOUT=${KIT_TIMEOUT:-90}

cleanup() {
	ip netns del "$NS" 2>/dev/null
	jobs -p | xargs -r kill 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

vmm() { [ "$1" = qemu ] && echo "$QM" || echo "$MK"; }
# QEMU's virtio-net carries an iPXE ROM: skip it (direct kernel boot).
nicopt() { [ "$1" = qemu ] && echo ",romfile="; }
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
free_udp_port() {
	python3 -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_listen() {	# wait_listen PORT: until something listens on 127.0.0.1:PORT (10 s)
	for _ in $(seq 100); do
		ss -Hltn "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# peer NAME VMM_A VMM_B ARGS_A ARGS_B: A listens, B connects; both must pass.
peer() {
	local name=$1 a=$2 b=$3 port rc_a rc_b
	port=$(free_port)
	(KIT_TAG="$name-a-" run_kit "$(vmm "$a") -netdev socket,id=n0,listen=127.0.0.1:$port \
		-device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:0a$(nicopt "$a")" \
		net-peer role=a timeout=60 $4) >"$TMP/a.out" 2>&1 &
	local pa=$!
	if ! wait_listen "$port"; then
		echo "FAIL $name: side A never listened on port $port"
		wait $pa
		cat "$TMP/a.out"
		fails=$((fails + 1))
		return
	fi
	KIT_TAG="$name-b-" run_kit "$(vmm "$b") -netdev socket,id=n0,connect=127.0.0.1:$port \
		-device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:0b$(nicopt "$b")" \
		net-peer role=b timeout=60 $5 >"$TMP/b.out" 2>&1
	rc_b=$?
	wait $pa
	rc_a=$?
	cat "$TMP/a.out" "$TMP/b.out"
	[ $rc_a = 0 ] && [ $rc_b = 0 ] || fails=$((fails + 1))
}

# dgram NAME VMM_A VMM_B NETDEV_A NETDEV_B: the net-peer exchange over a
# datagram socket backend (udp= or mcast=); both must pass. UDP has no
# flow control, so data frames go 200 us apart. In a multicast group each
# side also hears its own frames, which the kit ignores.
dgram() {
	local name=$1 a=$2 b=$3 rc_a rc_b
	(KIT_TAG="$name-a-" run_kit "$(vmm "$a") -netdev socket,id=n0,$4 \
		-device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:0a$(nicopt "$a")" \
		net-peer role=a timeout=60 gap=200) >"$TMP/a.out" 2>&1 &
	local pa=$!
	KIT_TAG="$name-b-" run_kit "$(vmm "$b") -netdev socket,id=n0,$5 \
		-device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:0b$(nicopt "$b")" \
		net-peer role=b timeout=60 gap=200 >"$TMP/b.out" 2>&1
	rc_b=$?
	wait $pa
	rc_a=$?
	cat "$TMP/a.out" "$TMP/b.out"
	[ $rc_a = 0 ] && [ $rc_b = 0 ] || fails=$((fails + 1))
}
udp_pair() {	# udp_pair NAME VMM_A VMM_B
	local pa pb
	pa=$(free_udp_port)
	pb=$(free_udp_port)
	dgram "$1" "$2" "$3" "udp=127.0.0.1:$pb,localaddr=127.0.0.1:$pa" \
		"udp=127.0.0.1:$pa,localaddr=127.0.0.1:$pb"
}
mcast_pair() {	# mcast_pair NAME VMM_A VMM_B
	local nd="mcast=239.255.77.$((RANDOM % 250 + 1)):$(free_udp_port),localaddr=127.0.0.1"

	dgram "$1" "$2" "$3" "$nd" "$nd"
}

# echo_server tcp PORT | unix PATH: in the background, accepts one
# connection on 127.0.0.1:PORT or at PATH and answers its first line with
# "echo: LINE"; returns once it listens.
echo_server() {
	python3 -c 'import socket,sys
if sys.argv[1] == "tcp":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[2])))
else:
    s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[2])
s.listen(1); s.settimeout(60)
c, _ = s.accept(); line = c.makefile("rb").readline(); c.sendall(b"echo: " + line); c.close()' \
		"$1" "$2" &
	if [ "$1" = tcp ]; then
		wait_listen "$2"
	else
		for _ in $(seq 100); do [ -S "$2" ] && break; sleep 0.1; done
	fi
}

# user NAME VMM [KIT_ARGS]: slirp with a TCP server on the host's loopback.
user() {
	local name=$1 v=$2 port srv
	shift 2
	port=$(free_port)
	echo_server tcp "$port"
	srv=$!
	KIT_TAG="$name-" run_kit "$(vmm "$v") -netdev user,id=n0 \
		-device virtio-net-pci,netdev=n0$(nicopt "$v")${NIC_EXTRA:-}" net-user port="$port" "$@" ||
		fails=$((fails + 1))
	kill $srv 2>/dev/null
	wait $srv 2>/dev/null
}

# A pinger for the host side (no ping binary needed): python3 raw ICMP.
cat >"$TMP/ping.py" <<'EOF'
import socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
dst, n, ok = sys.argv[1], int(sys.argv[2]), 0
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1)
for seq in range(1, n + 1):
    body = struct.pack("!HH", 0x4242, seq) + b"host ping %04d" % seq
    s.sendto(struct.pack("!BBH", 8, 0, csum(b"\x08\x00\0\0" + body)) + body, (dst, 0))
    end = time.time() + 2
    while time.time() < end:
        try:
            pkt, addr = s.recvfrom(2048)
        except socket.timeout:
            break
        ic = pkt[(pkt[0] & 15) * 4:]
        if addr[0] == dst and ic[0] == 0 and ic[4:] == body:
            ok += 1
            break
print("%d of %d echo replies from %s" % (ok, n, dst))
sys.exit(0 if ok == n else 1)
EOF

# tap NAME VMM QUEUES: a namespace with tap mktap0 = 192.168.77.1/24; the
# guest is 192.168.77.2, pings the host, then answers 3 pings.
tap() {
	local name=$1 v=$2 queues=$3 nd="" dev="" mq="" pv rc
	[ "$queues" -gt 1 ] && { nd=",queues=$queues"; dev=",mq=on,vectors=$((2 * queues + 2))";
				  mq=multi_queue; }
	ip netns add "$NS" && ip -n "$NS" link set lo up &&
	ip -n "$NS" tuntap add mktap0 mode tap $mq &&
	ip -n "$NS" addr add 192.168.77.1/24 dev mktap0 &&
	ip -n "$NS" link set mktap0 up || { echo "FAIL $name: namespace setup"; fails=$((fails + 1));
					    return; }
	local log="$LOGS/$name-net-tap.log"
	rm -f "$log"
	(KIT_TAG="$name-" run_kit "ip netns exec $NS $(vmm "$v") \
		-netdev tap,id=n0,ifname=mktap0,script=no,downscript=no$nd \
		-device virtio-net-pci,netdev=n0$dev$(nicopt "$v")" net-tap pings=3) \
		>"$TMP/tap.out" 2>&1 &
	pv=$!
	for _ in $(seq 300); do
		grep -aq 'net-tap: serving\|testkit: result' "$log" 2>/dev/null && break
		sleep 0.1
	done
	ip netns exec "$NS" python3 "$TMP/ping.py" 192.168.77.2 3
	rc=$?
	wait $pv || rc=1
	cat "$TMP/tap.out"
	[ $rc = 0 ] || fails=$((fails + 1))
	ip netns del "$NS"
}

echo "== socket backend: two VMM processes"
peer mk-mk minikvm minikvm "" ""
peer mk-qemu minikvm qemu "" ""
peer qemu-mk qemu minikvm "mrg=0" "ctrl=0"
# legacy: 10-byte header (mrg=0); anylayout=0 puts the header in its own descriptor
peer mk-mk-legacy minikvm minikvm "mode=legacy" "mode=legacy mrg=0 anylayout=0"
peer qemu-mk-legacy qemu minikvm "" "mode=legacy"
peer mk-qemu-legacy minikvm qemu "mode=legacy mrg=0 anylayout=0" "mode=legacy"
peer qemu-qemu-legacy qemu qemu "mode=legacy mrg=0 anylayout=0" "mode=legacy"
# MRG_RXBUF with small rx buffers (frames span up to 6), and a receiver
# that stops taking frames for 1 s while 2000 come: its rx ring fills, the
# device must hold the rest back (socket backpressure) and lose none.
peer mk-mk-merge minikvm minikvm "count=2000 rxbuf=256" "stall=1000"
peer qemu-mk-stall qemu minikvm "count=2000" "stall=1000 rxbuf=400"
grep -ah 'after the stall' "$LOGS/mk-mk-merge-b-net-peer.log" "$LOGS/qemu-mk-stall-b-net-peer.log" |
	sed 's/^.*testkit:/  minikvm: testkit:/'

echo "== socket backend, udp= and mcast=: two VMM processes"
udp_pair mk-mk-udp minikvm minikvm
udp_pair mk-qemu-udp minikvm qemu
mcast_pair mk-mk-mcast minikvm minikvm
mcast_pair qemu-mk-mcast qemu minikvm

echo "== user backend (slirp)"
user mk-user minikvm
user mk-user-legacy minikvm mode=legacy
user qemu-user qemu
# packed virtqueues (packed=on, off by default as in QEMU)
NIC_EXTRA=,packed=on user mk-user-packed minikvm packed=1
NIC_EXTRA=,packed=on user qemu-user-packed qemu packed=1
# guestfwd= with a cmd: target: the guest's TCP connection to 10.0.2.100
# runs a command (here a line echo) with the connection on stdin/stdout.
printf '#!/bin/sh\nexec sed -u "s/^/echo: /"\n' >"$TMP/echo.sh"
chmod +x "$TMP/echo.sh"
for v in minikvm qemu; do
	KIT_TAG="$v-guestfwd-" run_kit "$(vmm $v) -netdev user,id=n0,guestfwd=tcp:10.0.2.100:4321-cmd:$TMP/echo.sh \
		-device virtio-net-pci,netdev=n0$(nicopt $v)" net-user port=4321 peer=10.0.2.100 ||
		fails=$((fails + 1))
done
# guestfwd= with a socket target (QEMU's chardev): the VMM connects to a
# host server at startup and carries the guest's connection to
# 10.0.2.100:4321 over it, for a tcp: and a unix: target. The host stream
# outlives the guest's connection (no FIN back to the guest): fin=0.
for v in minikvm qemu; do
	port=$(free_port)
	echo_server tcp "$port"
	KIT_TAG="$v-guestfwd-tcp-" run_kit "$(vmm $v) -netdev user,id=n0,guestfwd=tcp:10.0.2.100:4321-tcp:127.0.0.1:$port \
		-device virtio-net-pci,netdev=n0$(nicopt $v)" net-user port=4321 peer=10.0.2.100 fin=0 ||
		fails=$((fails + 1))
	rm -f "$TMP/fwd.sock"
	echo_server unix "$TMP/fwd.sock"
	KIT_TAG="$v-guestfwd-unix-" run_kit "$(vmm $v) -netdev user,id=n0,guestfwd=tcp:10.0.2.100:4321-unix:$TMP/fwd.sock \
		-device virtio-net-pci,netdev=n0$(nicopt $v)" net-user port=4321 peer=10.0.2.100 fin=0 ||
		fails=$((fails + 1))
done
# -nic: backend and NIC in one option.
port=$(free_port)
echo_server tcp "$port"
KIT_TAG=mk-nic- run_kit "$MK -nic user,model=virtio-net-pci,mac=52:54:00:aa:bb:cc" \
	net-user port="$port" || fails=$((fails + 1))
check() {	# check NAME COMMAND...: the command must succeed
	local name=$1
	shift
	if "$@"; then echo "PASS $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
check "minikvm: -nic mac= reaches the device" \
	grep -aq 'net-user: mac 52:54:00:aa:bb:cc' "$LOGS/mk-nic-net-user.log"
# Odd tx chains (header only, runt, 70,000 bytes, split header), then DHCP.
for v in minikvm qemu; do
	KIT_TAG="$v-robust-" run_kit "$(vmm $v) -netdev user,id=n0 \
		-device virtio-net-pci,netdev=n0$(nicopt $v)" net-robust || fails=$((fails + 1))
done
KIT_TAG="minikvm-robust-packed-" run_kit "$MK -netdev user,id=n0 \
	-device virtio-net-pci,netdev=n0,packed=on" net-robust packed=1 || fails=$((fails + 1))
KIT_TAG="minikvm-robust-legacy-" run_kit "$MK -netdev user,id=n0 -device virtio-net-pci,netdev=n0" \
	net-robust mode=legacy || fails=$((fails + 1))

echo "== tap backend in a network namespace"
tap mk-tap minikvm 1
tap mk-tap-mq minikvm 2
tap qemu-tap qemu 1
tap qemu-tap-mq qemu 2

[ $fails = 0 ] || { echo "virtio-net: $fails check(s) failed"; exit 1; }
echo "virtio-net: all checks passed"
