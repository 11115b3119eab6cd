"""Where the built BPF objects live (see the Makefile)."""
from __future__ import annotations

from pathlib import Path

from bpflab.host.paths import BUILD_DIR


def object_path(name: str) -> Path:
    """build/NAME.bpf.o for the program NAME."""
    return BUILD_DIR / f"{name}.bpf.o"
