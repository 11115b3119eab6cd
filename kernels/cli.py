"""`bpflab kernels`: your tests (or any command) on other kernels.

    bpflab kernels [--kernel VERSION]... [-j N] [--out DIR] [--timeout S] [-- COMMAND [ARG...]]

COMMAND (default: pytest) runs in the current directory inside a VM booted
with each kernel (bpflab.kernels.matrix); results go to --out."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from bpflab.host.commandline import output_dir
from bpflab.kernels import fetch, matrix

ALIASES = {"matrix": "the six lines of bpflab's own matrix", "lts": "every long-term line the archive offers",
           "all": "every line the archive offers", "newest": "the newest line there is",
           "host": "this machine's kernel, no VM"}
EXIT_USAGE = 2


class KernelsError(Exception):
    """Bad input or a machine that cannot boot kernels: one line, exit 2."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kernel", action="append", default=[], metavar="VERSION",
                   help="a Debian kernel line (5.10, 6.1, 6.12, 7.2, ...), or " + ", ".join(
                       f"{k} ({v})" for k, v in ALIASES.items()) + "; repeatable, or comma-separated "
                       "(default: 6.1)")
    p.add_argument("-j", "--jobs", type=int, metavar="N", help="VMs at once (default: what fits, 2 vCPUs and 4 GiB each)")
    p.add_argument("--out", type=output_dir, default=Path("bpflab-kernels"), metavar="DIR",
                   help="where results.json, junit-VERSION.xml and console-VERSION.log go (default bpflab-kernels)")
    p.add_argument("--timeout", type=int, default=matrix.VM_TIMEOUT_S, metavar="S",
                   help=f"a VM still running after S seconds is stopped, its kernel an error (default {matrix.VM_TIMEOUT_S})")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                   help="what to run in the project's directory on each kernel (default: pytest; bpflab adds "
                        "--junitxml itself)")


def versions(asked: list[str], offered=None) -> list[str]:
    """--kernel values -> the versions to run, in order, each once. `offered`
    (the archive's lines) is read only when a value needs it."""
    words = [w.strip() for value in asked for w in value.split(",") if w.strip()] or ["6.1"]
    out: list[str] = []
    for word in words:
        if word == "matrix":
            chosen = list(matrix.MATRIX_KERNELS)
        elif word in ("lts", "all"):
            lines = offered() if callable(offered) else offered
            chosen = [line for line in lines if word == "all" or line in fetch.LONGTERM]
        elif word in ("newest", "host") or re.fullmatch(r"\d+\.\d+", word):
            if re.fullmatch(r"\d+\.\d+", word) and offered is not None:
                lines = offered() if callable(offered) else offered
                if word not in lines:
                    raise KernelsError(f"--kernel {word}: Debian's archive has no {word} kernel (has: "
                                       f"{', '.join(lines)})")
            chosen = [word]
        else:
            raise KernelsError(f"--kernel {word}: not a kernel line (6.1, 6.12, ...) nor one of {', '.join(ALIASES)}")
        out += [v for v in chosen if v not in out]
    return out


def archive_lines():
    """The archive's kernel lines, as a function that reads them once, only
    if a --kernel value needs them."""
    cached: list[str] = []

    def offered() -> list[str]:
        if not cached:
            try:
                cached.extend(fetch.lines())
            except fetch.KernelNotFound as exc:
                raise KernelsError(f"cannot read Debian's kernel archive: {exc}") from None
        return cached

    return offered


def command_of(args) -> list[str]:
    words = list(args.cmd)
    if words[:1] == ["--"]:
        words = words[1:]
        if not words:
            raise KernelsError("nothing after --: say the command to run on each kernel (e.g. -- pytest -q)")
    elif words:
        raise KernelsError(f"{words[0]!r}: put the command after -- (bpflab kernels --kernel 6.1 -- pytest -q)")
    return words or ["pytest"]


def machine_problems(vms: bool) -> list[str]:
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root (the kernels are fetched into root's cache and the guests run as root)")
    if vms and shutil.which("vng", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")) \
            is None:
        problems.append("virtme-ng is missing: pip install virtme-ng (and Debian's qemu-system-x86, busybox-static, "
                        "udev, kmod)")
    return problems


def run(args) -> int:
    command = command_of(args)
    if args.jobs is not None and args.jobs < 1:
        raise KernelsError(f"-j {args.jobs}: a number of VMs at once, 1 or more")
    chosen = versions(args.kernel, archive_lines())
    problems = machine_problems(any(v != matrix.HOST for v in chosen))
    if problems:
        raise KernelsError("; ".join(problems))
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    run_ = matrix.Run(project=Path.cwd(), command=command, out=out, timeout_s=args.timeout)
    return matrix.main(chosen, run_, args.jobs)
