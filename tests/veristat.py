"""The kernel's veristat, the oracle bpflab verifier stats is measured
against: Debian packages it from trixie on (0.4, libbpf/veristat), built
against trixie's C library and libbpf, which Debian 12 does not have. So
the package and those libraries come from Debian's archive through bpflab's
private apt configuration (the machine's apt is not touched), unpacked into
a cache, and veristat runs under trixie's own dynamic loader with trixie's
libraries first on its path.

    python -m tests.veristat      fetch it (scripts/setup.sh does)"""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bpflab.kernels.fetch import CACHE

# Pinned: another veristat could name or count a stat differently.
PACKAGES = ["veristat=0.4-1", "libc6/trixie", "libbpf1/trixie", "libelf1t64/trixie", "zlib1g/trixie"]
ROOT = CACHE.parent / "veristat-0.4"
LOADER = ROOT / "usr" / "lib64" / "ld-linux-x86-64.so.2"
LIBS = ROOT / "usr" / "lib" / "x86_64-linux-gnu"
BINARY = ROOT / "usr" / "bin" / "veristat"
# bpflab's JSON names for veristat's -o csv columns (veristat.c's stat names).
FIELDS = {"file_name": "object", "prog_name": "program", "verdict": "verdict", "total_insns": "insns",
          "total_states": "total_states", "peak_states": "peak_states",
          "max_states_per_insn": "max_states_per_insn", "max_mark_read_len": "mark_read",
          "stack_depth": "stack_depth"}
EMIT = "file,prog,verdict,insns,states,peak_states,max_states_per_insn,mark_read,stack"


class VeristatMissing(RuntimeError):
    pass


def fetch() -> Path:
    """veristat and what it runs on, unpacked under ROOT (once)."""
    if BINARY.exists():
        return BINARY
    from bpflab.kernels.fetch import Archive

    archive = Archive()
    archive.refresh()
    with tempfile.TemporaryDirectory() as tmp:
        debs = archive.download(PACKAGES, Path(tmp))
        partial = ROOT.with_name(ROOT.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
        shutil.rmtree(ROOT, ignore_errors=True)
        partial.rename(ROOT)
    return BINARY


def run(objects: list[Path]) -> list[dict]:
    """veristat's numbers for every program of `objects`, one dict per
    program under bpflab's names; verdict "loaded" or "rejected"."""
    if not BINARY.exists():
        raise VeristatMissing(f"veristat is not at {BINARY}: run scripts/setup.sh (or python -m tests.veristat)")
    out = subprocess.run([str(LOADER), "--library-path", str(LIBS), str(BINARY), "-o", "csv", "-e", EMIT,
                          *map(str, objects)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"veristat failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    rows = []
    for row in csv.DictReader(io.StringIO(out.stdout)):
        got = {FIELDS[k]: v for k, v in row.items() if k in FIELDS}
        got["verdict"] = {"success": "loaded", "failure": "rejected"}[got["verdict"]]
        rows.append({k: v if k in ("object", "program", "verdict") else int(v) for k, v in got.items()})
    return rows


if __name__ == "__main__":
    print(fetch())
    sys.exit(0)
