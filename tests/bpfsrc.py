"""Compile a small BPF C snippet for a test (with the project's flags)."""
from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

from bpflab.host.paths import REPO_ROOT

PRELUDE = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
"""
EPILOGUE = '\nchar LICENSE[] SEC("license") = "GPL";\n'


def compile_variant(tmp_path: Path, program: str, replacements: dict[str, str]) -> Path:
    """build/PROGRAM.bpf.o as it would be with `replacements` made in a copy
    of bpf/ (each text must occur exactly once in the program's source or
    in the header it names as "HEADER.h:text")."""
    src = tmp_path / "bpf"
    shutil.copytree(REPO_ROOT / "bpf", src, dirs_exist_ok=True)
    for old, new in replacements.items():
        name, _, text = old.partition(":") if old.split(":", 1)[0].endswith(".h") else (f"{program}.bpf.c", "", old)
        path = src / name
        source = path.read_text()
        if source.count(text) != 1:
            raise ValueError(f"{text!r} occurs {source.count(text)} times in {path.name}, not once")
        path.write_text(source.replace(text, new))
    out = tmp_path / "build"
    subprocess.run(["make", "-s", f"SRC={src}", f"BUILD={out}", str(out / f"{program}.bpf.o")], cwd=REPO_ROOT, check=True,
                   capture_output=True, text=True)
    return out / f"{program}.bpf.o"


def compile_bpf(tmp_path: Path, body: str, name: str = "snippet", clang: str = "clang") -> Path:
    src_dir = tmp_path / "src"
    src_dir.mkdir(exist_ok=True)
    (src_dir / f"{name}.bpf.c").write_text(PRELUDE + textwrap.dedent(body) + EPILOGUE)
    out = tmp_path / "out"
    subprocess.run(["make", "-s", f"SRC={src_dir}", f"BUILD={out}", f"CLANG={clang}", name],
                   cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return out / f"{name}.bpf.o"


def unchecked_read_message(register: str = r"R\d") -> str:
    """The verifier's last word on a packet read without a bounds check, as
    the running kernel words it (the same ranges as
    bpf/verifier/packet_bounds.bpf.c): measured on 6.18 and before, and on
    7.2 and 7.3. `register` is a name ("R1") or a regex."""
    from bpflab.host import kernel
    from bpflab.tool.verifier import in_range

    wording = "offset is outside of the packet" if in_range("<7.2", kernel.version()) else \
        "min value is outside of the allowed memory range"
    return f"{register} {wording}"
