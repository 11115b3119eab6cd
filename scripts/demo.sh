#!/usr/bin/env bash
# Set up (if needed) and run the demo: every program at work in throwaway labs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m bpflab.lab demo
