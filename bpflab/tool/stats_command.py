"""`bpflab verifier stats`: the command.

    bpflab verifier stats OBJ... [--json | --csv] [--output FILE]
                         [--baseline FILE [--max-growth PCT]]
                         [--kernel VERSION]... [-j N] [--out DIR] [--timeout S]

Exit 0; 1 when, against the baseline, a program stopped loading or grew
beyond PCT, or when a kernel gave no statistics; 2 on unusable input."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from pathlib import Path

from bpflab.host.commandline import output_dir, output_file
from bpflab.tool.stats import (
    CSV_HEADER,
    KernelStats,
    StatsError,
    as_csv,
    collect,
    csv_rows,
    kernel_line,
    table,
    this_kernel,
)
from bpflab.tool.stats_compare import (
    DEFAULT_MAX_GROWTH,
    Comparison,
    compare,
    comparison_csv,
    comparison_table,
    pair_with_baseline,
    read_report,
)

EXIT_REGRESSED = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("objects", nargs="+", type=Path, metavar="OBJ", help="BPF objects (clang -target bpf -g)")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help='one JSON object: {"kernel": RELEASE, "programs": [...]}, '
                                                          'or {"kernels": [...]} with --kernel')
    shape.add_argument("--csv", action="store_true", help="one row per program (and kernel), veristat's -o csv")
    p.add_argument("--output", type=output_file, metavar="FILE",
                   help="also write the JSON report to FILE (what --baseline reads later)")
    p.add_argument("--baseline", type=Path, metavar="FILE",
                   help="compare with an earlier --json report: programs matched by object file name and program "
                        "name; exit 1 when one that loaded is rejected now or grew beyond --max-growth")
    p.add_argument("--max-growth", type=float, default=DEFAULT_MAX_GROWTH, metavar="PCT",
                   help=f"with --baseline: how much insns and peak_states may grow, in percent "
                        f"(default {DEFAULT_MAX_GROWTH:g})")
    p.add_argument("--kernel", action="append", default=[], metavar="VERSION",
                   help="verify on this kernel in a VM, as bpflab kernels boots them (5.10, 6.1, host, matrix, lts, "
                        "...; repeatable or comma-separated); default: this machine's kernel, no VM")
    p.add_argument("-j", "--jobs", type=int, metavar="N", help="with --kernel: VMs at once (default: what fits)")
    p.add_argument("--out", type=output_dir, default=Path("bpflab-kernels"), metavar="DIR",
                   help="with --kernel: where each kernel's console log and statistics go (default bpflab-kernels)")
    p.add_argument("--timeout", type=int, default=600, metavar="S",
                   help="with --kernel: a VM still running after S seconds is stopped (default 600)")


def run(args) -> int:
    if args.max_growth < 0:
        raise StatsError(f"--max-growth {args.max_growth:g}: a percentage, 0 or more")
    if not args.kernel and (args.jobs is not None or args.out != Path("bpflab-kernels")):
        raise StatsError("-j and --out go with --kernel (statistics from other kernels)")
    baseline = read_report(args.baseline) if args.baseline else None
    runs = on_kernels(args, baseline) if args.kernel else [this_kernel(collect(args.objects))]
    comparisons = paired(baseline, runs, args) if baseline is not None else {}
    report = json_report(runs, comparisons, across=bool(args.kernel))
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.csv:
        print(csv_of(runs, comparisons, across=bool(args.kernel)), end="")
    else:
        print(text_of(runs, comparisons, args))
    regressed = any(c is not None and not c.ok for c in comparisons.values())
    return EXIT_REGRESSED if regressed or any(r.error for r in runs) else 0


def on_kernels(args, baseline: list[KernelStats] | None) -> list[KernelStats]:
    from bpflab.kernels import cli as kernels_cli
    from bpflab.kernels.matrix import HOST
    from bpflab.tool.stats_kernels import across

    if args.jobs is not None and args.jobs < 1:
        raise StatsError(f"-j {args.jobs}: a number of VMs at once, 1 or more")
    try:
        versions = kernels_cli.versions(args.kernel, kernels_cli.archive_lines())
        problems = kernels_cli.machine_problems(any(v != HOST for v in versions))
    except kernels_cli.KernelsError as exc:
        raise StatsError(str(exc)) from None
    if problems:
        raise StatsError("; ".join(problems))
    if baseline is not None:
        refuse_unmatched(baseline, versions, args)
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    # The engine's progress (each kernel's boot and console) stays off a
    # machine-read stdout.
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json or args.csv else contextlib.nullcontext()
    with quiet:
        return across([p.resolve() for p in args.objects], versions, out, args.jobs, args.timeout)


def refuse_unmatched(baseline: list[KernelStats], versions: list[str], args) -> None:
    """Before any VM boots: a baseline across kernels that has none of the
    lines asked for (when the versions say their lines) is refused."""
    from bpflab.kernels.matrix import HOST

    lines = [kernel_line(os.uname().release) if v == HOST else v for v in versions]
    if all(re.fullmatch(r"\d+\.\d+", line) for line in lines) and \
            not any(b.line in lines for b in baseline) and not (len(baseline) == 1 and not baseline[0].version
                                                                  and len(versions) == 1):
        raise unmatched(baseline, lines, args)


def unmatched(baseline: list[KernelStats], lines: list[str], args) -> StatsError:
    has = ", ".join(sorted({b.line for b in baseline})) or "no kernel"
    return StatsError(f"--baseline {args.baseline}: it holds no kernel of the lines this run had "
                      f"({', '.join(lines) or 'none ran'}; it has {has})")


def paired(baseline: list[KernelStats], runs: list[KernelStats], args) -> dict[int, Comparison | None]:
    """Each run's comparison (None: the baseline has no kernel of its line),
    by the run's index."""
    pairs = pair_with_baseline(baseline, [r for r in runs if not r.error])
    if not any(base is not None for _, base in pairs):
        raise unmatched(baseline, [r.line for r in runs if not r.error], args)
    return {runs.index(run): None if base is None else compare(base, run, args.max_growth) for run, base in pairs}


def json_report(runs: list[KernelStats], comparisons: dict, across: bool) -> dict:
    def entry(i: int, run: KernelStats) -> dict:
        data = run.as_json()
        if comparisons:
            c = comparisons.get(i)
            data["comparison"] = None if c is None else c.as_json()
        return data

    entries = [entry(i, r) for i, r in enumerate(runs)]
    return {"kernels": entries} if across else entries[0]


def csv_of(runs: list[KernelStats], comparisons: dict, across: bool) -> str:
    if comparisons:
        return "".join(comparison_csv(c) for c in comparisons.values() if c is not None)
    if not across:
        return as_csv(CSV_HEADER, csv_rows(runs[0].programs))
    from bpflab.tool.stats_kernels import kernels_csv

    return kernels_csv(runs)


def text_of(runs: list[KernelStats], comparisons: dict, args) -> str:
    if args.kernel:
        from bpflab.tool.stats_kernels import kernels_table

        parts = [kernels_table(runs)]
    else:
        parts = [] if comparisons else [f"kernel {runs[0].kernel}:\n{table(runs[0].programs)}"]
    for i, run in enumerate(runs):
        if i not in comparisons:
            continue
        c = comparisons[i]
        label = f"{run.version} ({run.kernel})" if run.version else run.kernel
        parts.append(comparison_table(c) if c is not None else
                     f"{label}: no baseline of the {run.line} line in {args.baseline}: not compared")
    return "\n\n".join(parts)
