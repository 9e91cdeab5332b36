#!/bin/bash
# qcow2 crash consistency: a writer (build/tests/test_qcow2 crashwriter)
# does random writes, write-zeroes, discards and flushes on a qcow2 image
# and is killed with SIGKILL at random times. After every kill
# `qemu-img check` must report the image clean or leaking only (exit 0 or
# 3, never 2), and every write completed before the last completed flush
# must read back (crashverify replays the writer's flush log). Runs with
# and without lazy refcounts (a dirty image is repaired by the next
# read-write open, then checked clean).
set -u
cd "$(dirname "$0")/../.."
T=build/tests/test_qcow2
[ -x "$T" ] || make -s "$T" >/dev/null || { echo "FAIL: cannot build $T"; exit 1; }
command -v qemu-img >/dev/null || { echo "SKIP: no qemu-img"; exit 0; }
ROUNDS=${ROUNDS:-34}
dir=$(mktemp -d /tmp/qcow2crash.XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail=0
# the third configuration creates refcount blocks (and grows the refcount
# table) all the time: 512-byte clusters with 64-bit refcounts
for cfg in "off 4096 16" "on 4096 16" "off 512 64"; do
	set -- $cfg
	lazy=$1
	img=$dir/img-$lazy-$2.qcow2
	qemu-img create -q -f qcow2 -o cluster_size=$2,refcount_bits=$3,lazy_refcounts=$lazy \
		"$img" 8M || exit 1
	leaks=0
	for i in $(seq 1 "$ROUNDS"); do
		seed=$((RANDOM * 32768 + RANDOM + 1))
		log=$dir/log
		rm -f "$log"
		"$T" crashwriter "$img" "$log" "$seed" 2>"$dir/werr" &
		pid=$!
		sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		if grep -q . "$dir/werr"; then
			echo "FAIL lazy=$lazy round $i: writer error: $(head -1 "$dir/werr")"; fail=1; break
		fi
		qemu-img check -q "$img" >"$dir/check" 2>&1
		rc=$?
		if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
			echo "FAIL lazy=$lazy round $i (seed $seed): qemu-img check exit $rc"
			head -20 "$dir/check"; cp "$img" /tmp/qcow2crash-failed.qcow2
			fail=1; break
		fi
		[ "$rc" -eq 3 ] && leaks=$((leaks + 1))
		if ! "$T" crashverify "$img" "$log" "$seed"; then
			echo "FAIL lazy=$lazy round $i (seed $seed): flushed data lost"
			cp "$img" /tmp/qcow2crash-failed.qcow2; fail=1; break
		fi
	done
	[ $fail -eq 0 ] || break
	# a read-write open (the writer's) repairs whatever is left; then clean
	"$T" randwrite "$img" /dev/null 1 0 >/dev/null 2>&1 || true
	"$T" crashwriter "$img" "$dir/log" 1 & pid=$!; sleep 0.05; kill -9 $pid; wait $pid 2>/dev/null
	qemu-img check -q -r leaks "$img" >/dev/null 2>&1
	qemu-img check -q "$img" || { echo "FAIL lazy=$lazy: not clean after repair"; fail=1; break; }
	echo "lazy_refcounts=$lazy cluster_size=$2 refcount_bits=$3: $ROUNDS kills, $leaks left leaks, never corrupt, flushed data intact"
done
[ $fail -eq 0 ] && echo "PASS test_qcow2_crash" || { echo "FAIL test_qcow2_crash"; exit 1; }
