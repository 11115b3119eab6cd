"""The program under test: any object's XDP or tc (sched_cls) program,
loaded, its maps filled from JSON, run frame by frame through
BPF_PROG_TEST_RUN (inside a network namespace when it asks the kernel's
routing, e.g. bpf_fib_lookup); a tc program in any checksum state
(bpflab.tool.states), the partial one in a lab (bpflab.tool.egress)."""
from __future__ import annotations

import dataclasses
import errno
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bpflab.host import kernel
from bpflab.host.netns import entered
from bpflab.libbpf import BpfObject, Program, xdp_md
from bpflab.libbpf.btf_codec import fill_map
from bpflab.libbpf.object import PROG_TYPE_SCHED_ACT, PROG_TYPE_SCHED_CLS, PROG_TYPE_XDP
from bpflab.libbpf.testrun import BPF_F_TEST_SKB_CHECKSUM_COMPLETE, XDP_ACTIONS

if TYPE_CHECKING:  # the egress lab (pyroute2, scapy) is imported when a partial run needs it
    from bpflab.tool.egress import Arrival, EgressRun

TC_ACTIONS = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT", 3: "TC_ACT_PIPE",
              4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT", 7: "TC_ACT_REDIRECT"}


class TargetError(Exception):
    """The program, a map file or the namespace cannot be used as asked."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    verdict: str  # XDP_PASS, TC_ACT_OK, ...; REFUSED, DROPPED or SENT (below)
    data: bytes   # what the program left (partial: the first frame that arrived, if any)
    state: str = "none"
    # complete: the kernel refused what the program left (EBADMSG: skb->csum
    # no longer matches the bytes); verdict REFUSED, no data
    refused: str = ""
    # partial: what the frame became in the egress lab (verdict DROPPED at
    # egress or SENT; the tc verdict itself is not seen there)
    arrival: Arrival | None = None


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
        self._egress: EgressRun | None = None
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

    def run(self, frame: bytes, state: str = "none") -> Outcome:
        """The program on `frame`, handed over in checksum `state` (tc only;
        bpflab.tool.states). OSError when the kernel refuses the frame itself."""
        if state == "partial":
            return self._run_partial(frame)
        with entered(self.netns):
            if self.kind == "xdp":
                ctx = xdp_md(data=0, data_end=len(frame), ingress_ifindex=self.ifindex) if self.ifindex else None
                result = self.program.test_run(frame, ctx=ctx)
                return Outcome(XDP_ACTIONS.get(result.retval, str(result.retval)), result.data)
            try:
                result = self.program.test_run(frame, flags=BPF_F_TEST_SKB_CHECKSUM_COMPLETE if state == "complete" else 0)
            except OSError as exc:
                if state == "complete" and exc.errno == errno.EBADMSG:
                    return Outcome("REFUSED", b"", state, refused="EBADMSG")
                raise
            retval = result.retval if result.retval < 2**31 else result.retval - 2**32
            return Outcome(TC_ACTIONS.get(retval, str(retval)), result.data, state)

    def _run_partial(self, frame: bytes) -> Outcome:
        if self.kind != "tc":
            raise TargetError(f"a {self.kind} program has no partial state (only tc programs do)")
        if self._egress is None:
            from bpflab.tool.egress import EgressRun

            self._egress = EgressRun(self.program.fd)
        arrival = self._egress.run(frame)
        data = arrival.at_middle[0][0] if arrival.at_middle else b""
        return Outcome("DROPPED" if arrival.dropped else "SENT", data, "partial", arrival=arrival)

    def close(self) -> None:
        if self._egress is not None:
            self._egress.close()
            self._egress = None
        self.obj.close()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
