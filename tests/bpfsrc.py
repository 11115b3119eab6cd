"""Variants of the project's BPF programs built for a test (with the project's
flags), and the verifier's wording of the rejection tests provoke."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from bpflab.host.paths import BUILD_DIR, REPO_ROOT


def compile_variant(tmp_path: Path, program: str, replacements: dict[str, str]) -> Path:
    """build/PROGRAM.bpf.o as it would be with `replacements` made in a copy
    of bpf/ (each text must occur exactly once in the program's source or
    in the header it names as "HEADER.h:text"). Kept in build/variants/
    under a hash of everything that goes into it, so a kernel VM (where a
    clang build takes half a minute) finds what the host built."""
    cached = BUILD_DIR / "variants" / f"{program}-{_variant_key(program, replacements)}.bpf.o"
    if cached.exists():
        return cached
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
    built = out / f"{program}.bpf.o"
    with contextlib.suppress(OSError):  # a guest's root is read-only: it only reads the cache
        cached.parent.mkdir(exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.part")
        shutil.copyfile(built, partial)
        partial.rename(cached)  # whole or not at all, with two workers writing
    return built


def _variant_key(program: str, replacements: dict[str, str]) -> str:
    """A hash of the sources, the replacements, the Makefile and the clang
    binary (its path, size and time) a variant is built from."""
    digest = hashlib.sha256(json.dumps([program, sorted(replacements.items())]).encode())
    for path in sorted(p for p in (REPO_ROOT / "bpf").rglob("*") if p.is_file()) + [REPO_ROOT / "Makefile"]:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    clang = shutil.which("clang")
    if clang:
        st = os.stat(clang)
        digest.update(f"{os.path.realpath(clang)} {st.st_size} {st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


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
