"""`bpflab verifier stats`: how hard the verifier works on each program of
anyone's objects, and how that moved against a baseline: veristat's
numbers (tools/testing/selftests/bpf/veristat.c), from the verifier's own
statistics (log level BPF_LOG_STATS) and the kernel's bpf_prog_info.

Each program is loaded alone, the way libbpf loads it (its object's maps
created), as veristat does: one rejected program does not hide the others."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from pathlib import Path

from bpflab.host.interrupts import checkpoint
from bpflab.libbpf import BpfError, BpfObject, VerifierError
from bpflab.libbpf.object import LOG_STATS

STATS_LINE = re.compile(r"processed (\d+) insns \(limit \d+\) max_states_per_insn (\d+) total_states (\d+) "
                        r"peak_states (\d+) mark_read (\d+)")
TIME_LINE = re.compile(r"verification time (\d+) usec")
# The stack: "stack depth 32+0" (a figure per subprogram) up to 6.18, with
# " max 16" (the deepest call chain) after it in 7.2; since 7.3 "stack
# depth max 16" and a line per subprogram, "subprog 1 (name) static
# insns_self 21 insns_total 21 stack 0". stack_depth is the sum of the
# subprograms' figures in each, as veristat sums them.
STACK_LINE = re.compile(r"^stack depth ([\d+]+)(?: max \d+)?$", re.MULTILINE)
SUBPROG_STACK = re.compile(r"^subprog \d+ \(.*\) .* stack (\d+)$", re.MULTILINE)
TRAILER = re.compile(r"^(processed \d+ insns|insns processed \d+|verification time|stack depth|subprog \d+ \(|"
                     r"-- END PROG LOAD LOG --)")
COLUMNS = ("insns", "total_states", "peak_states", "max_states_per_insn", "mark_read", "stack_depth",
           "verification_us", "xlated_insns", "jited_bytes", "verified_insns")
LAST_LINES = 3  # of a rejection's log: the verifier's conclusion


class StatsError(Exception):
    """An object that cannot be read as BPF: one line, exit 2."""


@dataclasses.dataclass
class ProgramStats:
    object: str   # the object's file name: what a baseline matches on, wherever it was built
    program: str
    verdict: str  # "loaded" or "rejected"
    insns: int | None = None  # instructions processed
    total_states: int | None = None
    peak_states: int | None = None
    max_states_per_insn: int | None = None
    mark_read: int | None = None
    stack_depth: int | None = None  # all of its subprograms' together
    verification_us: int | None = None
    xlated_insns: int | None = None
    jited_bytes: int | None = None
    verified_insns: int | None = None  # bpf_prog_info's (5.16+)
    log: list[str] = dataclasses.field(default_factory=list)  # a rejection's last lines

    @property
    def key(self) -> tuple[str, str]:
        return self.object, self.program

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ProgramStats:
        return cls(**{f.name: data.get(f.name, f.default if f.default is not dataclasses.MISSING else [])
                      for f in dataclasses.fields(cls)})


def parse_log(log: str) -> dict:
    """The verifier's statistics out of its log."""
    found: dict = {}
    if m := STATS_LINE.search(log):
        found.update(zip(("insns", "max_states_per_insn", "total_states", "peak_states", "mark_read"),
                         map(int, m.groups()), strict=True))
    if m := TIME_LINE.search(log):
        found["verification_us"] = int(m.group(1))
    if m := STACK_LINE.search(log):
        found["stack_depth"] = sum(int(part) for part in m.group(1).split("+") if part)
    elif subprogs := SUBPROG_STACK.findall(log):
        found["stack_depth"] = sum(map(int, subprogs))
    return found


def conclusion(log: str) -> list[str]:
    """The last lines a rejection's log has before the statistics."""
    lines = [line for line in log.splitlines() if line.strip()]
    while lines and TRAILER.match(lines[-1]):
        lines.pop()
    return lines[-LAST_LINES:] or ["(the kernel gave no verifier log)"]


EM_BPF = 247  # the ELF header's e_machine of a BPF object
WHOLE_OBJECT = "(object)"  # the row of an object libbpf could not open: none of its programs could load


def is_bpf_elf(path: Path) -> bool:
    """An ELF file for the BPF machine (little or big endian), whatever
    libbpf then makes of it."""
    with path.open("rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return False
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big") == EM_BPF


def program_names(path: Path) -> list[str] | ProgramStats:
    """The programs of the object at `path`; for a BPF object libbpf
    refuses to open (an extern it cannot resolve), the object's row,
    rejected: a verdict to report, not unusable input."""
    if not path.is_file():
        raise StatsError(f"{path}: no such file")
    try:
        with BpfObject(path, load=False) as obj:
            names = list(obj.programs)
    except BpfError as exc:
        if is_bpf_elf(path):
            return ProgramStats(path.name, WHOLE_OBJECT, "rejected",
                                log=[f"libbpf cannot open it: {line}" for line in exc.libbpf_log[-LAST_LINES:]]
                                or [f"libbpf cannot open it: {exc}"])
        raise StatsError(f"{path}: not a BPF object ({exc.strerror if exc.libbpf_log else 'libbpf cannot open it'})"
                         ) from None
    if not names:
        raise StatsError(f"{path}: a BPF object with no programs in it")
    return names


def stats_of(path: Path, program: str) -> ProgramStats:
    """`program` of the object at `path`, loaded alone."""
    checkpoint("stats-program")
    with BpfObject(path, load=False) as obj:
        for name, prog in obj.programs.items():
            prog.set_autoload(name == program)
        prog = obj.programs[program]
        prog.set_log_level(LOG_STATS)
        try:
            obj.load()
        except VerifierError as exc:
            return ProgramStats(path.name, program, "rejected", **parse_log(exc.log), log=conclusion(exc.log))
        except BpfError as exc:  # libbpf refused it before the verifier (a missing kfunc, a relocation)
            return ProgramStats(path.name, program, "rejected", log=exc.libbpf_log[-LAST_LINES:] or [str(exc)])
        info = prog.info()
        return ProgramStats(path.name, program, "loaded", **parse_log(prog.verifier_log),
                            xlated_insns=info.xlated_prog_len // 8, jited_bytes=info.jited_prog_len,
                            verified_insns=info.verified_insns or None)


def check_objects(paths: list[Path]) -> dict[Path, list[str] | ProgramStats]:
    """Each object's programs (or its row, if libbpf cannot open it); every
    object read before any is loaded, so a bad one is refused before the
    work."""
    return {path: program_names(path) for path in paths}


def collect(paths: list[Path]) -> list[ProgramStats]:
    """Every program of every object."""
    out: list[ProgramStats] = []
    for path, names in check_objects(paths).items():
        out += [names] if isinstance(names, ProgramStats) else [stats_of(path, name) for name in names]
    return out


@dataclasses.dataclass
class KernelStats:
    """One kernel's statistics: a report of `bpflab verifier stats`, or one
    entry of a report across kernels."""

    kernel: str                  # uname -r of the kernel that verified
    programs: list[ProgramStats]
    version: str = ""            # as asked for with --kernel ("6.1", "host"); "" for a run on this machine
    error: str = ""              # the kernel gave no statistics: why

    @property
    def line(self) -> str:
        """The kernel's line ("6.1"): what a baseline is matched on."""
        return kernel_line(self.kernel)

    def as_json(self) -> dict:
        data = {"kernel": self.kernel, "programs": [p.as_json() for p in self.programs]}
        return {"version": self.version, **data, **({"error": self.error} if self.error else {})} \
            if self.version else data

    @classmethod
    def from_json(cls, data: dict) -> KernelStats:
        return cls(data.get("kernel", ""), [ProgramStats.from_json(p) for p in data.get("programs", [])],
                   data.get("version", ""), data.get("error", ""))


def kernel_line(release: str) -> str:
    m = re.match(r"(\d+)\.(\d+)", release)
    return f"{m.group(1)}.{m.group(2)}" if m else release


def this_kernel(programs: list[ProgramStats]) -> KernelStats:
    return KernelStats(os.uname().release, programs)


def table(programs: list[ProgramStats]) -> str:
    head = f"{'object':<28} {'program':<24} {'verdict':<9}{'insns':>8}{'states':>8}{'peak':>7}{'stack':>7}" \
           f"{'us':>8}{'xlated':>8}{'jited':>8}"
    rows = [head]
    for p in programs:
        cells = [p.insns, p.total_states, p.peak_states, p.stack_depth, p.verification_us, p.xlated_insns,
                 p.jited_bytes]
        widths = (8, 8, 7, 7, 8, 8, 8)
        rows.append(f"{p.object:<28} {p.program:<24} {p.verdict:<9}"
                    + "".join(f"{'-' if v is None else v:>{w}}" for v, w in zip(cells, widths, strict=True)))
        rows += [f"{'':<28} {'':<24} | {line}" for line in p.log]
    return "\n".join(rows)


CSV_HEADER = ("object", "program", "verdict", *COLUMNS)


def csv_rows(programs: list[ProgramStats]) -> list[list]:
    return [[p.object, p.program, p.verdict, *("" if getattr(p, c) is None else getattr(p, c) for c in COLUMNS)]
            for p in programs]


def as_csv(header: tuple | list, rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def guest_main(argv: list[str]) -> int:
    """In a VM of `bpflab verifier stats --kernel`: the objects' statistics
    on this kernel, as JSON into the file the kernel engine brings back
    (COLLECT_ENV), and as a table on the console."""
    import logging

    from bpflab.kernels.matrix import COLLECT_ENV

    logging.getLogger("libbpf").setLevel(logging.CRITICAL)  # what matters of it is in the rows
    stats = this_kernel(collect([Path(a) for a in argv]))
    Path(os.environ[COLLECT_ENV]).write_text(json.dumps(stats.as_json()))
    print(table(stats.programs))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(guest_main(sys.argv[1:]))
