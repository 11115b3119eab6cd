#!/usr/bin/env bash
# Set up (if needed) and run the full privileged test suite on this machine's
# kernel; then the docs (nox -s docs: Sphinx, every warning an error); then
# bpflab as someone outside the repository gets it (nox -s installed: the wheel in a fresh virtualenv); then a CI-sized part of the
# suite (the verifier suite, the libbpf binding with XDP attach in a lab, and
# the test-run, fuzzing and lab tests of hello, packet_inspect,
# packet_counter, connection_tracker and mytcpdump) on Debian's 6.1 kernel in
# a VM. Extra arguments go to pytest (host run only, nothing else runs).
# In the VM a test fails after 30 s (-o timeout: `--timeout` would be
# bpflab kernels' own, the VM's) times the guest's slowness (300 s under
# software emulation; the slowest test takes 11 s there), not the default
# 120 s times it: one hung test fails alone, with its stack, and the rest
# still run within the VM's 1500 s. A test stuck where no signal reaches it
# (a killable wait in the kernel) cannot be failed; after 240 s its stack
# (every thread's) is printed all the same, so the run says where it stuck.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/nox -s kernel -- "$@"
if [ $# -eq 0 ]; then
    .venv/bin/nox -s docs
    .venv/bin/nox -s installed
    BPFLAB_VM_TIMEOUT=1500 .venv/bin/nox -s kernel -- --kernel 6.1 --out build/kernel-check -n 2 -q -o timeout=30 -o faulthandler_timeout=240 tests/test_verifier.py tests/test_binding.py \
        tests/test_mytcpdump.py tests/test_packet_counter.py tests/test_connection_tracker.py tests/test_packet_inspect.py tests/test_hello.py tests/test_fuzz.py
fi
