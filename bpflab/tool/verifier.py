"""An annotated verifier corpus, for any directory of *.bpf.c: read each
program's expectations from its BTF decl tags (<bpflab/annotations.h>:
__failure, __success, __msg, __regex, __msg_kernel, __regex_kernel,
__retval), load the program alone, match the verifier's log against the
expected messages in order, and test-run a program that must return a value
(`bpflab verifier corpus DIR`)."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
from pathlib import Path

from bpflab.host import kernel
from bpflab.host.interrupts import checkpoint
from bpflab.libbpf import BpfError, BpfObject, VerifierError
from bpflab.libbpf.btf import Btf

TAG = "bpflab:"
_BOUND = r"(?:>=|<=|==|<|>)\d+\.\d+"
_EXPECT_TAG = re.compile(rf"(msg|regex)(?:@({_BOUND}(?:,{_BOUND})*))?=(.*)", re.DOTALL)


class CorpusError(Exception):
    """The corpus cannot be checked (nothing in it, it does not build, an
    annotation cannot be read): one line, exit 2."""


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
class CorpusCase:
    obj: Path
    program: str
    outcome: str  # "failure" or "success"
    expects: list[Expect]
    retval: int | None = None  # __retval: what it must return under test-run, given PKT_V4

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


def cases_in(obj: Path, version: tuple[int, ...] | None = None) -> list[CorpusCase]:
    version = version or kernel.version()
    btf = Btf.from_elf(obj)
    try:
        tags = btf.decl_tags()
    finally:
        btf.close()
    cases: dict[str, CorpusCase] = {}
    for func, tag in tags:
        if not tag.startswith(TAG):
            continue
        body = tag[len(TAG):]
        case = cases.setdefault(func, CorpusCase(obj, func, "", []))
        if body in ("failure", "success"):
            case.outcome = body
            continue
        if body.startswith("retval="):
            case.retval = retval_of(obj, func, body.removeprefix("retval="))
            continue
        # kind[@range]=text; a range has "=" of its own (">=6.1,<6.8").
        tagged = _EXPECT_TAG.match(body)
        if tagged is None:
            raise CorpusError(f"{obj.name}: {func}: cannot read the annotation {body!r}")
        kind, span, text = tagged.groups()
        if span and not in_range(span, version):
            continue
        case.expects.append(Expect(kind, text))
    return list(cases.values())


# __retval's names: enum values the preprocessor leaves as words (TC_ACT_*
# are macros and arrive as numbers).
RETVAL_NAMES = {"XDP_ABORTED": 0, "XDP_DROP": 1, "XDP_PASS": 2, "XDP_TX": 3, "XDP_REDIRECT": 4}


def retval_of(obj: Path, func: str, text: str) -> int:
    word = text.strip().strip("()").strip()
    if word in RETVAL_NAMES:
        return RETVAL_NAMES[word]
    try:
        return int(word, 0)
    except ValueError:
        raise CorpusError(f"{obj.name}: {func}: __retval({text}): not a number nor one of "
                         f"{', '.join(RETVAL_NAMES)}") from None


# The frame a __retval program is test-run on: the kernel selftests' pkt_v4
# (test_progs.c), byte for byte, so that a program and its expectation
# carried over from there mean the same here. Ethernet (both addresses
# zero, IPv4), an IPv4 header of which only ihl (5, version left 0), the
# total length (123) and the protocol (TCP) are set, and a TCP header with
# data offset 5 and the urgent pointer 123 in host byte order.
PKT_V4 = (bytes(12) + b"\x08\x00"
          + b"\x05\x00" + (123).to_bytes(2, "big") + bytes(5) + b"\x06" + bytes(10)
          + bytes(12) + b"\x50\x00" + bytes(4) + (123).to_bytes(2, "little"))


@dataclasses.dataclass
class LoadResult:
    accepted: bool
    log: str  # the verifier's log, or libbpf's when it refused the object itself
    retval: int | None = None  # what test-run returned, when the case asked (__retval)
    run_error: str = ""  # why it could not be test-run


def load_alone(case: CorpusCase) -> LoadResult:
    """Load only case.program from its object (and test-run it on PKT_V4
    when the case says what it must return)."""
    try:
        with BpfObject(case.obj, load=False) as obj:
            for name, prog in obj.programs.items():
                prog.set_autoload(name == case.program)
            obj.load()
            if case.retval is None:
                return LoadResult(True, "")
            try:
                return LoadResult(True, "", retval=obj.programs[case.program].test_run(PKT_V4).retval)
            except BpfError as exc:
                return LoadResult(True, "", run_error=str(exc))
    except VerifierError as exc:
        return LoadResult(False, exc.log)
    except BpfError as exc:
        return LoadResult(False, "\n".join(exc.libbpf_log) or str(exc))


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


def problems_in(obj: Path) -> list[str]:
    """Every way the programs of `obj` disagree with their annotations."""
    problems = []
    for case in cases_in(obj):
        if case.outcome not in ("failure", "success"):
            problems.append(f"{case.id}: neither __failure nor __success")
            continue
        if case.retval is not None and case.outcome != "success":
            problems.append(f"{case.id}: __retval goes with __success (a program that must load)")
            continue
        outcome = load_alone(case)
        if case.outcome == "success":
            if not outcome.accepted:
                problems.append(f"{case.id} must load but was rejected:\n{outcome.log}")
            elif outcome.run_error:
                problems.append(f"{case.id} loaded, but test-run refused it (__retval): {outcome.run_error}")
            elif outcome.retval != case.retval:
                problems.append(f"{case.id} must return {case.retval} under test-run but returned {outcome.retval}")
            continue
        if outcome.accepted:
            problems.append(f"{case.id} must be rejected but the verifier accepted it")
            continue
        ok, report = match(outcome.log, case.expects)
        if not ok:
            problems.append(f"{case.id} was rejected, but not with the expected messages:\n{report}")
    return problems


INCLUDE_DIR = Path(__file__).resolve().parent.parent / "include"


def build(source: Path, out_dir: Path, clang: str = "clang") -> Path:
    """clang -target bpf, BTF on, <bpflab/annotations.h> on the include path."""
    arch = {"x86_64": "x86", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    obj = out_dir / source.name.replace(".bpf.c", ".bpf.o")
    cmd = [clang, "-target", "bpf", "-O2", "-g", f"-D__TARGET_ARCH_{arch}",
           f"-I/usr/include/{os.uname().machine}-linux-gnu", f"-I{INCLUDE_DIR}", f"-I{source.parent}",
           "-c", str(source), "-o", str(obj)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise CorpusError(f"compiler {clang} not found") from None
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr.strip())
        raise CorpusError(f"{source.name} does not build: {first}")
    return obj


def corpus_problems(directory: str | os.PathLike, clang: str = "clang") -> list[str]:
    """Build every .bpf.c source of `directory` and return every way its
    programs disagree with their annotations (empty: all as annotated);
    from Python, what `bpflab verifier corpus DIR` checks."""
    sources = sorted(Path(directory).glob("*.bpf.c"))
    if not sources:
        raise CorpusError(f"no *.bpf.c in {directory}")
    with tempfile.TemporaryDirectory(prefix="bpflab-verifier-") as tmp:
        objects = [build(source, Path(tmp), clang) for source in sources]
        if not any(cases_in(obj) for obj in objects):
            raise CorpusError(f"no program in {directory} carries __failure or __success")
        return [problem for obj in objects for problem in problems_in(obj)]


def run_corpus(directory: Path, clang: str = "clang") -> int:
    """Build and check every DIR/*.bpf.c; print each program's result.
    0: all as annotated; 1: some are not (the reports say how)."""
    sources = sorted(directory.glob("*.bpf.c"))
    if not sources:
        raise CorpusError(f"no *.bpf.c in {directory}")
    failed, checked = 0, 0
    with tempfile.TemporaryDirectory(prefix="bpflab-verifier-") as tmp:
        for source in sources:
            obj = build(source, Path(tmp), clang)
            checkpoint("verifier-built")
            cases = cases_in(obj)
            if not cases:
                print(f"{source.name}: no __failure/__success program (skipped)")
                continue
            problems = problems_in(obj)
            checked += len(cases)
            failed += len(problems)
            for case in cases:
                bad = [p for p in problems if p.startswith(case.id)]
                print(f"{case.id:<40} {case.outcome:<8} {'as annotated' if not bad else 'NOT as annotated'}")
            for problem in problems:
                print("  " + problem.replace("\n", "\n  "))
    if checked == 0:
        raise CorpusError(f"no program in {directory} carries __failure or __success")
    print(f"{checked} programs, {checked - failed} as annotated, {failed} not ({clang}, kernel "
          f"{'.'.join(map(str, kernel.version()))})")
    return 1 if failed else 0
