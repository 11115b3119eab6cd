"""`bpflab csum`: does a program get its checksums right? Frames aimed at
the checksum edges (bpflab.tool.edges) go through the program; every frame
it changes is judged by the lab's oracle (bpflab.lab.checksums). Hypothesis
drives it: a failure is shrunk to the smallest failing input found."""
from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as with_seed

from bpflab.lab.checksums import Finding, verify_frame
from bpflab.libbpf.btf_codec import addresses_and_ports
from bpflab.tool.edges import EDGES, Case, Pool, cases, discover, shares
from bpflab.tool.target import Target


@dataclasses.dataclass
class EdgeCount:
    frames: int = 0
    aimed: int = 0
    changed: int = 0
    checked: int = 0


@dataclasses.dataclass
class Failure(Exception):
    case: Case
    verdict: str
    output: bytes
    problems: list[Finding]

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)


@dataclasses.dataclass
class Report:
    edges: dict[str, EdgeCount]
    failure: Failure | None
    targets: tuple[tuple[str, int, int], ...] = ()

    @property
    def frames(self) -> int:
        return sum(e.frames for e in self.edges.values())

    @property
    def changed(self) -> int:
        return sum(e.changed for e in self.edges.values())

    @property
    def checked(self) -> int:
        return sum(e.checked for e in self.edges.values())

    def as_json(self) -> dict:
        failure = None
        if self.failure is not None:
            f = self.failure
            failure = {"edge": f.case.edge, "verdict": f.verdict, "input": f.case.frame.hex(), "output": f.output.hex(),
                       "problems": [{"field": f"{p.layer} checksum", "expected": p.expected, "actual": p.actual}
                                    for p in f.problems]}
        return {"frames": self.frames, "changed": self.changed, "checked": self.checked,
                "targets": [{"destination": d, "port": port, "protocol": proto} for d, port, proto in self.targets],
                "edges": {edge: dataclasses.asdict(c) for edge, c in self.edges.items()}, "failure": failure}


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
    addresses = sorted(keys[0] - {"0.0.0.0"}) or sorted(values[0] - {"0.0.0.0"})
    ports = sorted(keys[1] - {0}) or sorted(values[1] - {0})
    return dataclasses.replace(base, destinations=tuple(addresses) or base.destinations,
                               ports=tuple(ports) or base.ports)


def check(target: Target, *, examples: int = 1000, seed: int | None = None, pool: Pool | None = None) -> Report:
    """Run `examples` frames, each edge its share (edges.shares), through the
    program; stop at the first edge with a failure, shrunk to its smallest."""
    counts = {edge: EdgeCount() for edge in EDGES}

    def run(frame: bytes) -> bytes:
        try:
            return target.run(frame).data
        except OSError:
            return frame

    pool = pool or pool_from_maps(target, Pool())
    pool = dataclasses.replace(pool, targets=discover(pool, run))
    for edge, share in shares(examples).items():
        if share:
            failure = _check_edge(target, edge, share, seed, pool, run, counts[edge])
            if failure is not None:
                return Report(counts, failure, pool.targets)
    return Report(counts, None, pool.targets)


def _check_edge(target: Target, edge: str, share: int, seed: int | None, pool: Pool, run, count: EdgeCount
                ) -> Failure | None:
    failed: list[Failure] = []

    @settings(max_examples=share, database=None, deadline=None, derandomize=seed is None,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(case=cases(pool, run, edge))
    def each(case: Case) -> None:
        outcome = target.run(case.frame)
        counting = not failed  # shrinking re-runs cases: count the search only
        if counting:
            count.frames += 1
            count.aimed += case.aimed
        if outcome.data == case.frame:
            return
        verdict = verify_frame(outcome.data)
        if counting:
            count.changed += 1
            count.checked += bool(verdict.findings)
        if not verdict.ok:
            failure = Failure(case, outcome.verdict, outcome.data, verdict.problems)
            failed.append(failure)
            raise failure

    test = with_seed(seed)(each) if seed is not None else each
    try:
        test()
    except Failure as final:  # Hypothesis raises the smallest failing case last
        return final
    return None
