"""`bpflab verifier stats --kernel`: the same statistics from other kernels,
each in a VM booted by the engine of `bpflab kernels`; read as one table,
program by kernel."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from bpflab.kernels import matrix
from bpflab.tool.stats import CSV_HEADER, KernelStats, ProgramStats, as_csv, check_objects, csv_rows

COLLECTED = "stats-{version}.json"


def across(paths: list[Path], versions: list[str], out: Path, jobs: int | None = None,
           timeout_s: int = 600) -> list[KernelStats]:
    """Every program of `paths` on every kernel of `versions` (in that
    order). The objects are copied under out/objects (the guests see the
    project's directory, not the caller's /tmp), each in a directory of its
    own: two objects may share a file name."""
    check_objects(paths)  # unusable input is refused before any VM boots
    staging = out / "objects"
    shutil.rmtree(staging, ignore_errors=True)
    names = []
    for i, path in enumerate(paths):
        (staging / str(i)).mkdir(parents=True)
        shutil.copyfile(path, staging / str(i) / path.name)
        names.append(f"{i}/{path.name}")
    run = matrix.Run(project=staging, command=[sys.executable, "-m", "bpflab.tool.stats", *names], out=out,
                     timeout_s=timeout_s, collect=COLLECTED)
    results = matrix.run_all(versions, run, jobs or matrix.default_jobs())
    return [kernel_stats(r, run.collected(r.version)) for r in results]


def kernel_stats(result, collected: Path) -> KernelStats:
    """What one kernel's run brought back; an error entry when nothing."""
    try:
        stats = KernelStats.from_json(json.loads(collected.read_text()))
    except (FileNotFoundError, ValueError):
        why = result.note or (f"the statistics command exited {result.exit}" if result.exit is not None
                              else "the VM gave no exit status")
        return KernelStats(result.release, [], result.version, f"no statistics: {why}")
    stats.version = result.version
    return stats


def kernels_table(kernels: list[KernelStats]) -> str:
    """Program by kernel: instructions processed, or "rejected" (each
    rejection's verifier lines below), "-" where a kernel gave nothing."""
    keys: list[tuple[str, str]] = []
    for k in kernels:
        keys += [p.key for p in k.programs if p.key not in keys]
    cells = {(k.version, p.key): p for k in kernels for p in k.programs}
    width = max([12, *(len(k.version) + 2 for k in kernels)])
    lines = ["instructions processed by each kernel's verifier (\"rejected\": it refused the program):",
             f"{'object':<26} {'program':<24}" + "".join(f"{k.version:>{width}}" for k in kernels)]
    for key in keys:
        row = ""
        for k in kernels:
            p: ProgramStats | None = cells.get((k.version, key))
            row += f"{'-' if p is None else p.insns if p.verdict == 'loaded' else 'rejected':>{width}}"
        lines.append(f"{key[0]:<26} {key[1]:<24}" + row)
    lines.append("kernels: " + ", ".join(f"{k.version} {k.kernel or '(none ran)'}" for k in kernels))
    for k in kernels:
        for p in k.programs:
            if p.verdict == "rejected":
                lines.append(f"{p.object}/{p.program} rejected by {k.version} ({k.kernel}):")
                lines += [f"  | {text}" for text in p.log]
        if k.error:
            lines.append(f"{k.version}: {k.error}")
    return "\n".join(lines)


def kernels_csv(kernels: list[KernelStats]) -> str:
    return as_csv(("version", "kernel", *CSV_HEADER),
                  [[k.version, k.kernel, *row] for k in kernels for row in csv_rows(k.programs)])
