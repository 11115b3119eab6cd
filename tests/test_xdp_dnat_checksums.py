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
from scapy.layers.l2 import Ether

from bpflab.host import kernel
from bpflab.lab import dnat
from bpflab.lab.checksums import UDP, verify_frame
from bpflab.lab.topology import Neighbour
from bpflab.loaders import maglev
from bpflab.loaders.services import Endpoint, Service
from tests import maglev_model
from tests.csum_edges import EDGES, IHL_EDGES, classify, nat_cases
from tests.xdp_dnat_frames import BACKEND_IP, BACKEND_MAC, TC_ACT_REDIRECT, dnat_runner, return_runner

pytestmark = pytest.mark.kernel

# Examples per run, per edge and direction (times 10 under HYPOTHESIS_PROFILE=long,
# 0.4 under the kernel matrix's "vm" profile, never fewer than 10 per edge).
# Every aimed example hits its edge, so a bug at an edge fails its first one.
EXAMPLES = {edge: 50 for edge in EDGES} | {"random": 500} | {edge: 10 for edge in IHL_EDGES}
SCALE = 10 if settings.default.max_examples > 1000 else 0.4 if settings.default.max_examples < 300 else 1
# Backends the lb's FIB can reach: different address words for the updates.
BACKENDS = ((BACKEND_IP, BACKEND_MAC), ("10.244.1.77", "02:00:00:00:03:4d"), ("10.244.1.250", "02:00:00:00:03:fa"))
CHECKSUM_COMPLETE = kernel.has("skb_checksum_complete_test_run")
# Every forward example makes its own service (a table swap: the kernel waits
# for running programs, some ms): small tables, and services are replaced but
# never deleted, in a map large enough for all of them. Neither the table's
# size nor the other services have a part in the rewrite.
MAGLEV_SIZE = 251
MAX_SERVICES = 4096


def examples(edge: str) -> int:
    return max(10, int(EXAMPLES[edge] * SCALE))


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
            backends = (target,) + tuple(Endpoint(ip, port + i) for i, ip in enumerate(others))
            if maglev.build([(b.name, b.weight) for b in backends], MAGLEV_SIZE)[entry] == 0:
                return dataclasses.replace(service, backends=backends)
    raise AssertionError(f"no three-backend service sends {service.frontend}'s flow to {service.backend}")


def explain(got: bytes, want: bytes) -> str:
    return (f"\ngot:      {verify_frame(got)}\n{Ether(got).show(dump=True)}"
            f"\nexpected: {verify_frame(want)}\n{Ether(want).show(dump=True)}")


def run_edge(direction: str, edge: str, run_case) -> collections.Counter:
    """Run `examples(edge)` cases aimed at `edge` through run_case(case);
    returns how often each edge was hit."""
    hits: collections.Counter = collections.Counter()

    @settings(max_examples=examples(edge), deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=nat_cases(direction, edge, BACKENDS))
    def each(case):
        found = classify(case)
        assert edge in found, f"aimed at {edge}, hit only {sorted(found)}"
        assert verify_frame(case.frame).ok and verify_frame(case.expected).ok
        run_case(case)
        hits.update(found)

    each()
    return hits


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
    def run_case(case):
        service = spread(service_of(case), case.frame)
        forward.made = getattr(forward, "made", 0) + 1
        if forward.made % (MAX_SERVICES // 4) == 0:  # long profiles: room for the next ones (3 slots each)
            for old in forward.table.list():
                forward.table.delete(old.vip, old.port, old.proto)
        forward.table.set(service)  # a flow pinned to an earlier backend of this key went with its slot
        result = forward.run(case.frame)
        assert result.action == "XDP_REDIRECT"
        assert result.data == case.expected, explain(result.data, case.expected)

    hits = run_edge("forward", edge, run_case)
    assert hits[edge] == examples(edge)


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

    hits = run_edge("return", edge, run_case)
    assert hits[edge] == examples(edge)
