"""The verifier-rejection suite's machinery: read each program's
expectations from its BTF decl tags (bpf/verifier/annotations.h), load the
program alone, and match the log against the expected messages in order."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from bpflab.host import kernel
from bpflab.libbpf import BpfError, BpfObject, VerifierError
from bpflab.libbpf.btf import Btf

TAG = "bpflab:"


@dataclasses.dataclass(frozen=True)
class Expect:
    kind: str  # "msg" or "regex"
    text: str

    def find(self, log: str, start: int) -> tuple[int, int] | None:
        if self.kind == "msg":
            at = log.find(self.text, start)
            return None if at < 0 else (at, at + len(self.text))
        m = re.compile(self.text).search(log, start)
        return None if m is None else m.span()


@dataclasses.dataclass
class Case:
    obj: Path
    program: str
    outcome: str  # "failure" or "success"
    expects: list[Expect]

    @property
    def id(self) -> str:
        return f"{self.obj.stem.removesuffix('.bpf')}/{self.program}"


def in_range(spec: str, version: tuple[int, ...]) -> bool:
    """spec: comma-separated bounds like ">=6.1,<6.8"."""
    for bound in spec.split(","):
        op, ver = re.match(r"(>=|<=|<|>|==)(\d+\.\d+)", bound.strip()).groups()
        v = tuple(int(x) for x in ver.split("."))
        if not {"<": version < v, "<=": version <= v, ">": version > v, ">=": version >= v, "==": version == v}[op]:
            return False
    return True


def cases_in(obj: Path, version: tuple[int, ...] | None = None) -> list[Case]:
    version = version or kernel.version()
    btf = Btf.from_elf(obj)
    try:
        tags = btf.decl_tags()
    finally:
        btf.close()
    cases: dict[str, Case] = {}
    for func, tag in tags:
        if not tag.startswith(TAG):
            continue
        body = tag[len(TAG):]
        case = cases.setdefault(func, Case(obj, func, "", []))
        if body in ("failure", "success"):
            case.outcome = body
            continue
        key, _, text = body.partition("=")
        kind, _, span = key.partition("@")
        if span and not in_range(span, version):
            continue
        case.expects.append(Expect(kind, text))
    return list(cases.values())


@dataclasses.dataclass
class Outcome:
    accepted: bool
    log: str  # the verifier's log, or libbpf's when it refused the object itself


def load_alone(case: Case) -> Outcome:
    """Load only case.program from its object."""
    try:
        with BpfObject(case.obj, load=False) as obj:
            for name, prog in obj.programs.items():
                prog.set_autoload(name == case.program)
            obj.load()
        return Outcome(True, "")
    except VerifierError as exc:
        return Outcome(False, exc.log)
    except BpfError as exc:
        return Outcome(False, "\n".join(exc.libbpf_log) or str(exc))


def match(log: str, expects: list[Expect]) -> tuple[bool, str]:
    """Whether every expectation matches, in order; and a report that shows
    the whole log with each expectation marked found or MISSING."""
    marks, pos, ok = [], 0, True
    for e in expects:
        span = e.find(log, pos)
        if span is None:
            ok = False
            marks.append(f"  MISSING  {e.kind}: {e.text!r} (searched from offset {pos})")
        else:
            marks.append(f"  found    {e.kind}: {e.text!r} at offset {span[0]}")
            pos = span[1]
    report = "expected, in order:\n" + "\n".join(marks) + "\n--- log ---\n" + log
    return ok, report
