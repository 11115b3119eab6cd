"""xdp_dnat's checksums at the edges of one's complement arithmetic, in
both directions: the forward rewrite (XDP, bpf/csum.h's RFC 1624 updates)
and the return path (tc, the kernel's csum helpers), each through test-run,
each compared byte for byte with the independent model. Forward, every
case's service has three backends and the program's Maglev pick lands on
the case's own (spread()); the return path is keyed by the connection, so
its cases need only the connection entry (replies of every backend of a
three-backend service: tests/test_xdp_dnat_balance.py).

Every edge gets its own property test with a stated number of examples,
and an independent classifier (tests/csum_edges.py) confirms that every
example really hits its edge: the count is asserted, so a strategy that
stopped aiming would fail here instead of quietly testing less.
"""
import collections
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.l2 import Ether

from bpflab.host import kernel
from bpflab.lab import dnat
from bpflab.lab.checksums import UDP, verify_frame
from bpflab.lab.topology import Neighbour
from bpflab.loaders import maglev
from bpflab.loaders.services import Backend, Service
from tests import maglev_model
from tests.csum_edges import EDGES, IHL_EDGES, classify, nat_cases
from tests.xdp_dnat_frames import BACKEND_IP, BACKEND_MAC, TC_ACT_REDIRECT, dnat_runner, return_runner

pytestmark = pytest.mark.kernel

# Examples per run, per edge and direction (times 10 under HYPOTHESIS_PROFILE=long,
# 0.2 under the kernel matrix's "vm" profile, never fewer than 10 per edge).
# Every aimed example hits its edge, so a bug at an edge fails its first one.
EXAMPLES = {edge: 50 for edge in EDGES} | {"random": 300} | {edge: 10 for edge in IHL_EDGES}
SCALE = 10 if settings.default.max_examples > 1000 else 0.2 if settings.default.max_examples < 300 else 1
# Backends the lb's FIB can reach: different address words for the updates.
BACKENDS = ((BACKEND_IP, BACKEND_MAC), ("10.244.1.77", "02:00:00:00:03:4d"), ("10.244.1.250", "02:00:00:00:03:fa"))
CHECKSUM_COMPLETE = kernel.has("skb_checksum_complete_test_run")
# Every forward case makes its own service (a table swap: the kernel waits
# for running programs, some ms, once per swap): BATCH cases' services go in
# with one swap, tables are small (spread() builds several per case), and
# services are replaced, deleted only when the map is half full. Neither the
# table's size nor the other services have a part in the rewrite.
MAGLEV_SIZE = 31
MAX_SERVICES = 4096
BATCH = 10


def examples(edge: str) -> int:
    """Examples for `edge`, whole batches of BATCH."""
    return max(1, round(EXAMPLES[edge] * SCALE / BATCH)) * BATCH


def service_of(case) -> Service:
    nat, proto = case.nat, "udp" if case.nat.proto == UDP else "tcp"
    if nat.direction == "forward":
        return Service.to(nat.old_addr, nat.old_port, proto, nat.new_addr, nat.new_port)
    return Service.to(nat.new_addr, nat.new_port, proto, nat.old_addr, nat.old_port)


def spread(service: Service, frame: bytes) -> Service:
    """`service` with two more backends (the other addresses the lb's FIB
    knows), their ports chosen so that the Maglev table sends `frame`'s flow
    to the case's own backend: the rewrite at the edge then happens in a
    service of three backends, its backend picked by the program's hash."""
    others = [ip for ip, _ in BACKENDS if ip != service.backend.ip][:2]
    entry = maglev_model.flow_hash(frame) % MAGLEV_SIZE
    # An entry deep in the case backend's permutation is rarely its with
    # equal weights: more weight, more turns, until it is.
    for weight in range(1, 2 * MAGLEV_SIZE):
        target = dataclasses.replace(service.backend, weight=weight)
        for port in range(1024, 1024 + 32):
            backends = (target,) + tuple(Backend(ip, port + i) for i, ip in enumerate(others))
            if maglev.build([(b.name, b.weight) for b in backends], MAGLEV_SIZE)[entry] == 0:
                return dataclasses.replace(service, backends=backends)
    raise AssertionError(f"no three-backend service sends {service.frontend}'s flow to {service.backend}")


def explain(got: bytes, want: bytes) -> str:
    return (f"\ngot:      {verify_frame(got)}\n{Ether(got).show(dump=True)}"
            f"\nexpected: {verify_frame(want)}\n{Ether(want).show(dump=True)}")


def run_edge(direction: str, edge: str, run_cases, batch: int = 1) -> tuple[collections.Counter, int]:
    """Run `examples(edge)` cases aimed at `edge` through run_cases(cases),
    `batch` at a time; returns how often each edge was hit, and how many
    cases ran."""
    hits: collections.Counter = collections.Counter()
    ran = 0

    @settings(max_examples=examples(edge) // batch, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases=st.lists(nat_cases(direction, edge, BACKENDS), min_size=batch, max_size=batch))
    def each(cases):
        nonlocal ran
        found = [classify(case) for case in cases]
        for case, edges in zip(cases, found, strict=True):
            assert edge in edges, f"aimed at {edge}, hit only {sorted(edges)}"
            assert verify_frame(case.frame).ok and verify_frame(case.expected).ok
        run_cases(cases)
        for edges in found:
            hits.update(edges)
        ran += len(cases)

    each()
    return hits, ran


def rounds(services: list[Service]) -> list[list[int]]:
    """Indexes of `services` in rounds where no service key comes twice
    (two cases may address the same VIP and port with other backends)."""
    out: list[list[int]] = []
    placed: list[set[bytes]] = []
    for i, service in enumerate(services):
        key = bytes(service.key())
        n = next((r for r, keys in enumerate(placed) if key not in keys), len(out))
        if n == len(out):
            out.append([])
            placed.append(set())
        out[n].append(i)
        placed[n].add(key)
    return out


@pytest.fixture(scope="module")
def forward(module_lab_factory):
    topo = dnat()
    extra = tuple(Neighbour("lb", "eth1", ip, mac) for ip, mac in BACKENDS if ip != BACKEND_IP)
    lab = module_lab_factory(dataclasses.replace(topo, neighbours=topo.neighbours + extra))
    with dnat_runner(lab, services=(), maglev_size=MAGLEV_SIZE, max_services=MAX_SERVICES) as runner:
        yield runner


@pytest.fixture(scope="module")
def reverse():
    with return_runner(services=(), maglev_size=MAGLEV_SIZE) as runner:
        yield runner


@pytest.mark.parametrize("edge", EDGES)
def test_forward_rewrite_at_the_edge(forward, edge):
    def run_cases(cases):
        services = [spread(service_of(case), case.frame) for case in cases]
        for each_round in rounds(services):
            forward.made = getattr(forward, "made", 0) + len(each_round)
            if forward.made >= MAX_SERVICES // 4:  # long profiles: room for the next ones (3 slots each)
                forward.table.delete_many([(s.vip, s.port, s.proto) for s in forward.table.services()])
                forward.made = len(each_round)
            # One swap for the batch (the kernel waits once); a flow pinned
            # to an earlier backend of a key went with its slot.
            forward.table.put_many([services[i] for i in each_round])
            for i in each_round:
                result = forward.run(cases[i].frame)
                assert result.action == "XDP_REDIRECT"
                assert result.data == cases[i].expected, explain(result.data, cases[i].expected)

    hits, ran = run_edge("forward", edge, run_cases, batch=BATCH)
    assert hits[edge] == ran == examples(edge)


@pytest.mark.parametrize("edge", EDGES)
def test_return_rewrite_at_the_edge(reverse, edge):
    def run_case(case):
        service = service_of(case)
        reverse.connect(case.frame, service)  # the return path needs only the connection
        try:
            for complete in (False, True) if CHECKSUM_COMPLETE else (False,):
                result = reverse.run(case.frame, complete=complete)
                assert result.retval == TC_ACT_REDIRECT
                assert result.data == case.expected, f"complete={complete}" + explain(result.data, case.expected)
        finally:
            reverse.disconnect_all()

    hits, ran = run_edge("return", edge, lambda cases: [run_case(case) for case in cases])
    assert hits[edge] == ran == examples(edge)
