#!/bin/bash
# Bad command lines end with exit status 1 and exactly one clear line on
# stderr, never a crash; --help and --version exit 0.
set -u
M=build/minikvm
fail() { echo "FAIL: $*"; exit 1; }

expect_error() {
	local pattern=$1; shift
	local err status
	err=$("$M" "$@" 2>&1 >/dev/null); status=$?
	[ $status -eq 1 ] || fail "'$*' exited $status, expected 1 (stderr: $err)"
	[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "'$*' printed more than one line: $err"
	printf '%s' "$err" | grep -q -- "$pattern" || fail "'$*': '$err' does not mention '$pattern'"
	echo "ok: $* -> $err"
}

"$M" --help | grep -q -- "-kernel" || fail "--help lacks -kernel"
"$M" --version | grep -q "minikvm version" || fail "--version"
expect_error "unknown option" -frobnicate
expect_error "needs an argument" -m
expect_error "invalid RAM size" -m lots
expect_error "smp" -smp 0
expect_error "unknown CPU feature" -cpu host,+warp
expect_error "unsupported device" -device e1000
expect_error "only allowed with -kernel" -initrd /etc/hostname
expect_error "machine" -machine q35
expect_error "/nonexistent/kernel" -kernel /nonexistent/kernel
expect_error "/nonexistent/bios" -bios /nonexistent/bios
expect_error "kernel" -kernel /etc/hostname
expect_error "serial" -serial bogus:thing
expect_error "-D" -D /nonexistent/dir/log
echo "all CLI error cases passed"
