#!/usr/bin/env bash
# Set up (if needed) and run the full privileged test suite on this machine's
# kernel, then a CI-sized part of it (the verifier suite, the libbpf binding
# with XDP attach in a lab, and mytcpdump's test-run and lab tests) on
# Debian's 6.1 kernel in a VM. Extra arguments go to pytest (host run only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/nox -s kernel -- "$@"
if [ $# -eq 0 ]; then
    BPFLAB_VM_TIMEOUT=1500 .venv/bin/nox -s kernel -- --kernel 6.1 -n 2 -q tests/test_verifier.py tests/test_binding.py \
        tests/test_mytcpdump.py
fi
