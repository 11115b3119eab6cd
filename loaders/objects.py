"""Where the built BPF objects live (see the Makefile)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = Path(os.environ.get("BPFLAB_BUILD_DIR", REPO_ROOT / "build"))


def object_path(name: str) -> Path:
    """build/NAME.bpf.o for the program NAME."""
    return BUILD_DIR / f"{name}.bpf.o"
