#!/usr/bin/env bash
# Set up (if needed) and run the full privileged test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/nox -s kernel -- "$@"
