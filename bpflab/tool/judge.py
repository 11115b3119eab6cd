"""Is what a program made of a frame right? One frame, its outcome in one
checksum state (bpflab.tool.target), judged by the lab's oracle
(bpflab.lab.checksums) and, where the frame crossed the egress lab, by
the receiving kernels' own checksum-error counters. Shared by `bpflab csum`
and `bpflab run`, so both call the same things wrong."""
from __future__ import annotations

import dataclasses

from bpflab.lab.checksums import Finding, verify_rewrite
from bpflab.tool.states import as_partial
from bpflab.tool.target import Outcome


@dataclasses.dataclass(frozen=True)
class Problem:
    """One wrong thing: a checksum field with its expected and actual value,
    or something the kernel refused (no values)."""

    field: str              # "TCP checksum", "skb->csum"
    expected: int | None
    actual: int | None
    why: str = ""           # "partial: pseudo-header sum", "the kernel refused ...", ...

    @classmethod
    def of(cls, finding: Finding) -> Problem:
        return cls(f"{finding.layer} checksum", finding.expected, finding.actual, finding.note)

    def __str__(self) -> str:
        """"TCP checksum 0x158b, expected 0x171a (why)", as the oracle says it."""
        values = f" 0x{self.actual:04x}, expected 0x{self.expected:04x}" if self.expected is not None else ""
        return f"{self.field}{values}" + (f" ({self.why})" if self.why else "")

    def detail(self) -> str:
        """"TCP checksum; expected 0x171a, actual 0x158b (why)": the report's field line."""
        values = f"; expected 0x{self.expected:04x}, actual 0x{self.actual:04x}" if self.expected is not None else ""
        return f"{self.field}{values}" + (f" ({self.why})" if self.why else "")

    def as_json(self) -> dict:
        return {"field": self.field, "expected": self.expected, "actual": self.actual, "why": self.why}


@dataclasses.dataclass(frozen=True)
class Judgement:
    state: str
    changed: bool            # the program changed the frame
    checked: bool            # and everything in it with a checksum was judged (maybe nothing: ARP)
    problems: tuple[Problem, ...] = ()
    unchecked: str = ""      # what could not be judged, and why: counted apart from good and bad
    output: bytes = b""      # what the program sent (partial: as the middle got it)
    where: str = ""          # partial: "middle" or "sink", where a problem was seen
    fate: str = ""           # partial: a frame dropped at egress
    nothing: str = ""        # why the frame carries no checksum to judge (ARP, a later fragment)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def gap(self) -> bool:
        """Changed, not wrong, but not all judged: never to be called right."""
        return self.ok and self.changed and not self.checked

    def summary(self) -> str:
        """"ok", "unchanged", what is wrong, or what could not be judged."""
        if self.problems:
            return "; ".join(map(str, self.problems))
        if self.fate:
            return self.fate
        if not self.changed:
            return "unchanged"
        if not self.checked:
            return f"not checked: {self.unchecked}"
        return "ok" + (f" (no checksum: {self.nothing})" if self.nothing else "")


def judge(frame: bytes, outcome: Outcome, *, udp6_zero_ports=()) -> Judgement:
    """`outcome` is what the program made of `frame` (Target.run).
    `udp6_zero_ports`: tunnels that may send UDP checksum 0 over IPv6."""
    if outcome.state == "partial":
        return _judge_arrival(frame, outcome, udp6_zero_ports)
    if outcome.refused:
        why = f"{outcome.refused}: it no longer matches the bytes the program left"
        return Judgement(outcome.state, True, True, (Problem("skb->csum", None, None, why),))
    if outcome.data == frame:
        return Judgement(outcome.state, False, False, output=outcome.data)
    verdict = verify_rewrite(frame, outcome.data, udp6_zero_ports=udp6_zero_ports)
    return Judgement(outcome.state, True, verdict.complete, tuple(map(Problem.of, verdict.problems)),
                     verdict.unchecked, outcome.data, nothing="" if verdict.findings else verdict.nothing)


def _judge_arrival(frame: bytes, outcome: Outcome, udp6_zero_ports) -> Judgement:
    """The partial state: what arrived at the middle (still partial) and at
    the sink (completed by the middle's kernel), and the kernels' counters."""
    arrival, sent = outcome.arrival, as_partial(frame)
    sent = sent[0] if sent is not None else frame
    if arrival.dropped:
        return Judgement("partial", False, False, fate="dropped at egress")
    if not arrival.at_middle:
        # What the program made of it is unknown: it went where the lab does not look.
        return Judgement("partial", True, False, unchecked="it never reached the middle (redirected elsewhere, or "
                                                           "dropped after the egress hook)")
    changed = any(data != sent for data, _ in arrival.at_middle)
    if not changed:
        return Judgement("partial", False, False, output=outcome.data)
    problems, unchecked, where = [], "", ""
    for place, frames in (("middle", arrival.at_middle), ("sink", arrival.at_sink)):
        for data, partial in frames:
            verdict = verify_rewrite(sent, data, partial=partial, udp6_zero_ports=udp6_zero_ports)
            unchecked = unchecked or verdict.unchecked
            if verdict.problems and not problems:
                problems, where = [Problem.of(f) for f in verdict.problems], place
    for counter, n in arrival.kernel_errors.items():
        node, name = counter.split(" ", 1)
        problems.append(Problem(name, None, None, f"the {node}'s kernel dropped {n} frame(s) for a bad checksum"))
        where = where or node
    return Judgement("partial", True, not unchecked, tuple(problems), unchecked, outcome.data, where)
