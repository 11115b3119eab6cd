"""Where things live on this machine, each named once."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # a checkout: bpf/, build/, tests/
BUILD_DIR = Path(os.environ.get("BPFLAB_BUILD_DIR", REPO_ROOT / "build"))  # make's output

STATE_DIR = Path("/run/bpflab")      # owner and instance lock files, CLI lab state
NETNS_RUN_DIR = Path("/run/netns")   # named network namespaces (`ip netns`, pyroute2)
BPFFS = Path("/sys/fs/bpf")
TRACEFS = Path("/sys/kernel/tracing")

# Everything bpflab makes on the host is named with this prefix (namespaces,
# pin directories, tracefs instances), so leftovers can be found.
PREFIX = "bpflab-"
