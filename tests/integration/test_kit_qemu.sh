#!/bin/bash
# The guest test kit under QEMU 7.2 (Debian qemu-system-x86): proves the
# kit itself right, so a kit failure on minikvm points at minikvm. QEMU is
# a test dependency installed by scripts/setup: missing QEMU is a failure.
cd "$(dirname "$0")/../.." || exit 1
command -v qemu-system-x86_64 >/dev/null || { echo "FAIL: qemu-system-x86_64 missing (run scripts/setup)"; exit 1; }
bash tests/integration/kit-qemu.sh
