"""Compile a small BPF C snippet for a test (with the project's flags)."""
from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from tests.clitools import REPO

PRELUDE = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
"""
EPILOGUE = '\nchar LICENSE[] SEC("license") = "GPL";\n'


def compile_bpf(tmp_path: Path, body: str, name: str = "snippet", clang: str = "clang") -> Path:
    src_dir = tmp_path / "src"
    src_dir.mkdir(exist_ok=True)
    (src_dir / f"{name}.bpf.c").write_text(PRELUDE + textwrap.dedent(body) + EPILOGUE)
    out = tmp_path / "out"
    subprocess.run(["make", "-s", f"SRC={src_dir}", f"BUILD={out}", f"CLANG={clang}", name],
                   cwd=REPO, check=True, capture_output=True, text=True)
    return out / f"{name}.bpf.o"
