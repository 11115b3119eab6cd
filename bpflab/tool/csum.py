"""`bpflab csum`: does a program get its checksums right? Frames aimed at
the checksum edges (bpflab.tool.edges) go through the program, a tc
program in every checksum state the kernel hands packets over in
(bpflab.tool.states); every frame it changes is judged (bpflab.tool.judge).
Hypothesis drives it: a failure is shrunk to the smallest failing input found."""
from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as with_seed

from bpflab.host.interrupts import checkpoint
from bpflab.libbpf.btf_codec import addresses_and_ports
from bpflab.tool.edges import Case, Pool, cases, discover, family, shares
from bpflab.tool.judge import Problem, judge
from bpflab.tool.states import as_partial, choose
from bpflab.tool.target import Target


@dataclasses.dataclass
class EdgeCount:
    frames: int = 0
    aimed: int = 0
    changed: int = 0
    checked: int = 0    # changed frames judged whole (in every state they ran in)
    unchecked: int = 0  # changed frames with something no state could judge (never called right)
    states: dict[str, int] = dataclasses.field(default_factory=dict)  # changed frames judged in each state
    reasons: dict[str, int] = dataclasses.field(default_factory=dict)  # why frames went unchecked: how many


@dataclasses.dataclass
class Failure(Exception):
    case: Case
    state: str         # the checksum state it failed in ("none" for XDP)
    verdict: str
    output: bytes      # what the program sent (complete, refused: what it sends in the none state)
    problems: list[Problem]
    where: str = ""    # partial: "middle" (still partial) or "sink" (completed)

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)


@dataclasses.dataclass
class Report:
    edges: dict[str, EdgeCount]
    failure: Failure | None
    targets: tuple[tuple[str, int, int], ...] = ()
    kind: str = "xdp"
    states: tuple[str, ...] = ("none",)
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)  # state: why it was not run
    families: tuple[int, ...] = (4, 6)  # the IP families frames were made of
    named: tuple[tuple[str, int, int], ...] = ()  # targets named by hand (--target), aimed at as found ones

    @property
    def frames(self) -> int:
        return sum(e.frames for e in self.edges.values())

    @property
    def changed(self) -> int:
        return sum(e.changed for e in self.edges.values())

    @property
    def checked(self) -> int:
        return sum(e.checked for e in self.edges.values())

    @property
    def unchecked(self) -> int:
        return sum(e.unchecked for e in self.edges.values())

    def reasons(self) -> dict[str, int]:
        """Why frames went unchecked, with how many, most first."""
        total: dict[str, int] = {}
        for e in self.edges.values():
            for why, n in e.reasons.items():
                total[why] = total.get(why, 0) + n
        return dict(sorted(total.items(), key=lambda kv: -kv[1]))

    def as_json(self) -> dict:
        failure = None
        if self.failure is not None:
            f = self.failure
            failure = {"edge": f.case.edge, "state": f.state if self.kind == "tc" else None, "where": f.where or None,
                       "verdict": f.verdict, "input": f.case.frame.hex(), "output": f.output.hex(),
                       "problems": [p.as_json() for p in f.problems]}
        tc = self.kind == "tc"
        return {"frames": self.frames, "changed": self.changed, "checked": self.checked, "unchecked": self.unchecked,
                "unchecked_why": self.reasons(), "families": list(self.families),
                "named": [{"destination": d, "port": port, "protocol": proto} for d, port, proto in self.named],
                "states": list(self.states) if tc else None, "left_out": self.left_out if tc else None,
                "targets": [{"destination": d, "port": port, "protocol": proto} for d, port, proto in self.targets],
                "edges": {edge: {**dataclasses.asdict(c), "states": c.states if tc else None}
                          for edge, c in self.edges.items()},
                "failure": failure}


def pool_from_maps(target: Target, base: Pool) -> Pool:
    """Destinations and ports to aim at, read from what the maps hold
    (their keys first: keys steer a program, values are what it writes)."""
    keys, values = (set(), set()), (set(), set())
    for bmap in target.obj.maps.values():
        if bmap.inner is not None and bmap.btf_key_type_id:  # a map of maps: its keys steer
            key_codec = target.obj.btf.codec(bmap.btf_key_type_id)
            for key, _ in bmap.items_raw():
                addresses, ports = addresses_and_ports(key_codec, key)
                keys[0].update(addresses)
                keys[1].update(ports)
            continue
        if not (bmap.btf_key_type_id and bmap.btf_value_type_id) or bmap.type == 27:  # 27: ring buffers
            continue
        key_codec = target.obj.btf.codec(bmap.btf_key_type_id)
        value_codec = target.obj.btf.codec(bmap.btf_value_type_id)
        for key, per_cpu in bmap.items_raw():
            for bucket, codec, raw in ((keys, key_codec, key), (values, value_codec, per_cpu[0])):
                addresses, ports = addresses_and_ports(codec, raw)
                bucket[0].update(addresses)
                bucket[1].update(ports)
    unset = {"0.0.0.0", "::"}
    addresses = sorted(keys[0] - unset) or sorted(values[0] - unset)
    ports = sorted(keys[1] - {0}) or sorted(values[1] - {0})
    return dataclasses.replace(base, destinations=tuple(addresses) or base.destinations,
                               ports=tuple(ports) or base.ports)


def check(target: Target, *, examples: int = 1000, seed: int | None = None, pool: Pool | None = None,
          states: tuple[str, ...] | None = None, left_out: dict[str, str] | None = None, udp6_zero_ports=()
          ) -> Report:
    """Run `examples` frames, each edge its share (edges.shares), through the
    program, in each of `states` (tc programs; default: every state this
    machine can run, bpflab.tool.states.choose); stop at the first edge
    with a failure, shrunk to its smallest. `udp6_zero_ports`: tunnels
    that may send UDP checksum 0 over IPv6."""
    if states is None:
        states, left_out = choose(target.kind, None, in_namespace=target.netns is not None)
    def run(frame: bytes) -> bytes:
        try:
            return target.run(frame).data
        except OSError:
            return frame

    pool = pool or pool_from_maps(target, Pool())
    found = discover(pool, run)
    named = tuple(t for t in pool.named if family(t[0]) in pool.aimed_families)
    pool = dataclasses.replace(pool, targets=tuple(dict.fromkeys(named + found)))
    counts = {edge: EdgeCount(states=dict.fromkeys(states, 0)) for edge in pool.edges()}
    report = Report(counts, None, found, target.kind, states, left_out or {}, pool.aimed_families, pool.named)
    for edge, share in shares(examples, pool.edges()).items():
        if share:
            report.failure = _check_edge(target, edge, share, seed, pool, run, counts[edge], states, udp6_zero_ports)
            if report.failure is not None:
                break
    return report


def _run_case(target: Target, case: Case, states: tuple[str, ...], count: EdgeCount | None, udp6_zero_ports=()
              ) -> Failure | None:
    """`case` through the program in each state (the partial one only for
    what a stack sends partial); the first state it fails in."""
    changed, gaps = False, []
    failure = None
    for state in states:
        if state == "partial" and as_partial(case.frame) is None:
            continue
        outcome = target.run(case.frame, state)
        verdict = judge(case.frame, outcome, udp6_zero_ports=udp6_zero_ports)
        changed = changed or verdict.changed
        gaps += [verdict.unchecked] if verdict.gap else []
        if count is not None and verdict.changed and verdict.checked:
            count.states[state] += 1
        if not verdict.ok:
            output = verdict.output or (target.run(case.frame).data if outcome.refused else b"")
            failure = Failure(case, state, outcome.verdict, output, list(verdict.problems), verdict.where)
            break
    if count is not None:
        count.changed += changed
        count.checked += changed and not gaps
        count.unchecked += bool(gaps)
        for why in gaps[:1]:
            count.reasons[why] = count.reasons.get(why, 0) + 1
    return failure


def _check_edge(target: Target, edge: str, share: int, seed: int | None, pool: Pool, run, count: EdgeCount,
                states: tuple[str, ...], udp6_zero_ports=()) -> Failure | None:
    failed: list[Failure] = []

    @settings(max_examples=share, database=None, deadline=None, derandomize=seed is None,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(case=cases(pool, run, edge))
    def each(case: Case) -> None:
        counting = not failed  # shrinking re-runs cases: count the search only
        checkpoint("csum-frame" if counting else "csum-shrink")
        if counting:
            count.frames += 1
            count.aimed += case.aimed
        failure = _run_case(target, case, states, count if counting else None, udp6_zero_ports)
        if failure is not None:
            failed.append(failure)
            raise failure

    test = with_seed(seed)(each) if seed is not None else each
    try:
        test()
    except Failure as final:  # Hypothesis raises the smallest failing case last
        return final
    return None
