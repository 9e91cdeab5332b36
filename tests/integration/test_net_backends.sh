#!/bin/bash
# Tap backend end to end, inside a private network namespace (needs root):
# build/tests/test_net_tap runs under `ip netns exec` and opens tap
# interfaces there, with up/down scripts that log their argument; the
# kernel's ARP/UDP/ICMP frames reach the backend and ours reach the kernel.
# Then minikvm's own startup errors for tap (failing script, bad ifname),
# and a minikvm that opens a tap with scripts and is stopped by a signal.
# Nothing leaves the namespace; the namespace is removed at exit.
cd "$(dirname "$0")/../.." || exit 1
fail() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (creates a network namespace and tap devices)"
[ -c /dev/net/tun ] || fail "/dev/net/tun is missing"
command -v ip >/dev/null || fail "the ip tool (iproute2) is missing"
M=${MINIKVM:-build/minikvm}
[ -x build/tests/test_net_tap ] || make -s build/tests/test_net_tap >/dev/null ||
	fail "cannot build build/tests/test_net_tap"
[ -x "$M" ] || fail "build first (make)"

NS=minikvm-nettest-$$
T=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
ip netns add "$NS" || fail "cannot create network namespace $NS"
ip netns exec "$NS" ip link set lo up

# The scripts log their argument into $T/log/up and $T/log/down.
mkdir "$T/log"
cat > "$T/up" <<EOF
#!/bin/sh
ip link set "\$1" up && ip addr add 192.168.77.1/24 dev "\$1" || exit 1
echo "\$1" > "$T/log/up"
EOF
cat > "$T/down" <<EOF
#!/bin/sh
echo "\$1" > "$T/log/down"
EOF
chmod +x "$T/up" "$T/down"

ip netns exec "$NS" env MINIKVM_NETNS_TEST=1 MKVM_TAP_UP="$T/up" MKVM_TAP_DOWN="$T/down" \
	MKVM_TAP_LOG="$T/log" timeout 120 build/tests/test_net_tap > "$T/unit.out" 2>&1
status=$?
cat "$T/unit.out"
[ $status -eq 0 ] || fail "test_net_tap in the namespace (status $status)"
grep -q "SKIPPED" "$T/unit.out" && fail "test_net_tap skipped its tests"
echo "ok: tap traffic, scripts, vnet header, variants"

# QEMU 7.2 interoperability: QEMU's socket netdev (connect=) talks to our
# listen= backend, bridged to our slirp; iPXE in QEMU (TCG: iPXE's real-mode
# code needs instructions this host's KVM cannot emulate) gets a DHCP offer
# through our framing and answers with a REQUEST. Loopback only.
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 is missing"
[ -x build/tests/test_net_qemu ] || make -s build/tests/test_net_qemu >/dev/null ||
	fail "cannot build build/tests/test_net_qemu"
PORT=$((20000 + RANDOM % 20000))
MINIKVM_QEMU_PORT=$PORT timeout 150 build/tests/test_net_qemu > "$T/qemu-unit.out" 2>&1 &
upid=$!
for _ in $(seq 50); do grep -q listening "$T/qemu-unit.out" && break; sleep 0.1; done
timeout 140 qemu-system-x86_64 -accel tcg -m 64 -display none -nodefaults -serial none \
	-boot n -netdev socket,id=n0,connect=127.0.0.1:$PORT -device virtio-net-pci,netdev=n0 \
	> "$T/qemu.out" 2>&1 &
qpid=$!
wait $upid
status=$?
kill $qpid 2>/dev/null
wait $qpid 2>/dev/null
cat "$T/qemu-unit.out"
[ $status -eq 0 ] || { cat "$T/qemu.out"; fail "QEMU socket netdev interop (status $status)"; }
grep -q "SKIPPED" "$T/qemu-unit.out" && fail "test_net_qemu skipped"
echo "ok: QEMU 7.2 socket netdev <-> minikvm socket backend <-> slirp (DHCP)"

# minikvm's startup errors: one line, exit status 1.
expect_error() {
	local pattern=$1; shift
	local err status
	err=$(ip netns exec "$NS" timeout 20 "$M" -m 16 -nographic -nodefaults "$@" 2>&1 >/dev/null)
	status=$?
	[ $status -eq 1 ] || fail "'$*' exited $status, expected 1 ($err)"
	[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "'$*' printed more than one line: $err"
	printf '%s' "$err" | grep -qF -- "$pattern" || fail "'$*': '$err' lacks '$pattern'"
	echo "ok: $* -> $err"
}
expect_error "-netdev tap,id=n0,ifname=mk0,script=/bin/false: network script /bin/false failed" \
	-netdev tap,id=n0,ifname=mk0,script=/bin/false
expect_error "ifname= must have 1 to 15 characters" -netdev tap,id=n0,ifname=waytoolongforaniface
expect_error "-nic tap,model=virtio-net-pci,script=/bin/false: network script" \
	-nic tap,model=virtio-net-pci,script=/bin/false
expect_error "duplicate netdev id 'n0'" \
	-netdev tap,id=n0,ifname=mk1,script=no,downscript=no -netdev user,id=n0

# A running minikvm keeps its tap until it ends; the down script runs at
# exit (needs net_cleanup() before minikvm's final _exit).
rm -f "$T/log/up" "$T/log/down"
ip netns exec "$NS" "$M" -m 16 -nographic -nodefaults \
	-netdev "tap,id=n0,ifname=mkvm9,script=$T/up,downscript=$T/down" > "$T/vm.out" 2>&1 &
pid=$!
for _ in $(seq 50); do [ -s "$T/log/up" ] && break; sleep 0.1; done
[ "$(cat "$T/log/up" 2>/dev/null)" = mkvm9 ] || fail "up script did not run with mkvm9"
ip netns exec "$NS" ip link show mkvm9 >/dev/null 2>&1 || fail "mkvm9 missing while minikvm runs"
kill -TERM $pid
wait $pid
ip netns exec "$NS" ip link show mkvm9 >/dev/null 2>&1 && fail "mkvm9 outlived minikvm"
if [ "$(cat "$T/log/down" 2>/dev/null)" = mkvm9 ]; then
	echo "ok: minikvm ran the down script at exit"
else
	fail "minikvm did not run the down script at exit (net_cleanup before _exit?)"
fi
echo "all network backend integration checks passed"
