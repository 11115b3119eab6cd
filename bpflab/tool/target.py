"""The program under test: any object's XDP or tc (sched_cls) program,
loaded, its maps filled from JSON, run frame by frame through
BPF_PROG_TEST_RUN (inside a network namespace when it asks the kernel's
routing, e.g. bpf_fib_lookup)."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from bpflab.host import kernel
from bpflab.host.netns import entered
from bpflab.libbpf import BpfObject, Program, xdp_md
from bpflab.libbpf.btf_codec import fill_map
from bpflab.libbpf.object import PROG_TYPE_SCHED_ACT, PROG_TYPE_SCHED_CLS, PROG_TYPE_XDP
from bpflab.libbpf.testrun import XDP_ACTIONS

TC_ACTIONS = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT", 3: "TC_ACT_PIPE",
              4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT", 7: "TC_ACT_REDIRECT"}


class TargetError(Exception):
    """The program, a map file or the namespace cannot be used as asked."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    verdict: str  # XDP_PASS, TC_ACT_OK, ...
    data: bytes


def load_map_file(spec: str) -> tuple[str, list]:
    """NAME=FILE.json -> (name, entries)."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise TargetError(f"--map wants NAME=FILE.json, not {spec!r}")
    try:
        return name, json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise TargetError(f"map file {path} not found") from None
    except json.JSONDecodeError as exc:
        raise TargetError(f"map file {path}: not JSON: {exc}") from None


class Target:
    def __init__(self, obj: str | os.PathLike, *, prog: str | None = None, maps: list[str] = (),
                 netns: str | None = None, ifindex: int | None = None):
        if not Path(obj).is_file():
            raise TargetError(f"BPF object {obj} not found")
        self.netns, self.ifindex = netns, ifindex
        self.obj = BpfObject(obj)  # VerifierError says what the verifier said
        try:
            self.program = self._choose(prog)
            self.kind = {PROG_TYPE_XDP: "xdp", PROG_TYPE_SCHED_CLS: "tc", PROG_TYPE_SCHED_ACT: "tc"}.get(
                self.program.type)
            if self.kind is None:
                raise TargetError(f"program '{self.program.name}' is neither XDP nor tc (sched_cls): "
                                  "nothing to run frames through")
            if self.kind == "xdp" and ifindex and not kernel.has("xdp_test_run_ctx"):
                since, what = kernel.FEATURES["xdp_test_run_ctx"]
                raise TargetError(f"--ifindex: this kernel ({os.uname().release}) lacks {what}, which came in "
                                  f"{since}: run without an ingress interface, or on a newer kernel")
            for spec in maps:
                name, entries = load_map_file(spec)
                if name not in self.obj.maps:
                    raise TargetError(f"--map {name}: no such map in {obj} (has: {', '.join(self.obj.maps)})")
                fill_map(self.obj, name, entries)
        except BaseException:
            self.obj.close()
            raise

    def _choose(self, name: str | None) -> Program:
        programs = self.obj.programs
        if name is not None:
            if name not in programs:
                raise TargetError(f"no program '{name}' in {self.obj.path} (has: {', '.join(programs)})")
            return programs[name]
        runnable = [p for p in programs.values() if p.type in (PROG_TYPE_XDP, PROG_TYPE_SCHED_CLS, PROG_TYPE_SCHED_ACT)]
        if len(runnable) != 1:
            raise TargetError(f"{self.obj.path} has {len(runnable)} XDP/tc programs "
                              f"({', '.join(p.name for p in runnable)}): say which with --prog")
        return runnable[0]

    def run(self, frame: bytes) -> Outcome:
        with entered(self.netns):
            if self.kind == "xdp":
                ctx = xdp_md(data=0, data_end=len(frame), ingress_ifindex=self.ifindex) if self.ifindex else None
                result = self.program.test_run(frame, ctx=ctx)
                return Outcome(XDP_ACTIONS.get(result.retval, str(result.retval)), result.data)
            result = self.program.test_run(frame)
            retval = result.retval if result.retval < 2**31 else result.retval - 2**32
            return Outcome(TC_ACTIONS.get(retval, str(retval)), result.data)

    def close(self) -> None:
        self.obj.close()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
