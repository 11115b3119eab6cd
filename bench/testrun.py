"""test_run_ns: nanoseconds per packet from BPF_PROG_TEST_RUN, for each
program and an XDP_PASS baseline, measured in the same run.

A plain repeated test-run feeds each run's output frame into the next. For
the programs that only read, that is the same frame every time. xdp_dnat
rewrites it: after the first run the frame is addressed to the backend and
would take the cheap "not a service" path. So the backend is also made a
service of itself (backend:port -> backend:port): every repetition then does
the full work of a real packet - lookup, FIB, checksums, MACs, redirect.
"""
from __future__ import annotations

import contextlib
import dataclasses
import socket
import statistics
import tempfile
from pathlib import Path

from scapy.layers.inet import TCP

from bpflab.bench import ablation
from bpflab.bench.datapath import keep_lab_hop
from bpflab.host.netns import entered
from bpflab.lab import builder, dnat
from bpflab.lab.frames import towards_peer
from bpflab.lab.topology import BACKEND_IP, VIP, Neighbour
from bpflab.libbpf import BpfObject, xdp_md
from bpflab.loaders.nexthops import HopTable, Keeper
from bpflab.loaders.objects import BUILD_DIR, object_path
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.registry import PROGRAMS
from bpflab.loaders.service_table import DnatMaps, ServiceTable
from bpflab.loaders.services import Backend, BackendSlot, Service, ServiceKey, service_key
from bpflab.loaders.xdp_dnat import read_verdicts

REPEAT = 200_000
XDP_REDIRECT = 4
ROUNDS = 5
RING_BYTES = 32 << 20  # room for every event of a round: the full path, no drops


def frame_to_vip(lab) -> bytes:
    return bytes(towards_peer(lab.topology, "client", dst=VIP) / TCP(sport=40000, dport=80, flags="S") / bytes(6))


def per_packet_ns(obj: BpfObject, program: str, frame: bytes, ctx=None, netns=None, drain=None) -> float:
    samples = []
    for _ in range(ROUNDS):
        with entered(netns):
            result = obj.program(program).test_run(frame, repeat=REPEAT, ctx=ctx)
        samples.append(result.duration_ns)
        if drain:
            drain()
    return statistics.median(samples)


# xdp_dnat_3_backends: the service spread over three backends the lb's FIB knows.
THREE = ((BACKEND_IP, "02:00:00:00:03:05"), ("10.244.1.77", "02:00:00:00:03:4d"), ("10.244.1.250", "02:00:00:00:03:fa"))


def add_services(obj: BpfObject, backends: tuple[str, ...] = (BACKEND_IP,)) -> None:
    """The service, and every backend a service of itself (see the module
    docstring): with several backends, each of those spreads over all of
    them too, so every repetition goes through a multi-backend service."""
    table = ServiceTable(DnatMaps.of(obj))
    spread = tuple(Backend(ip, 8080) for ip in backends)
    table.put(Service(VIP, 80, "tcp", spread))
    for ip in backends:
        table.put(Service(ip, 8080, "tcp", spread))


def floor_services(obj: BpfObject) -> None:
    """The floor's plain service map: the service and the backend as a
    service of itself, one backend each."""
    services = obj.map("services").bind(ServiceKey, BackendSlot)
    backend = BackendSlot(ip_be32(BACKEND_IP), socket.htons(8080), 1)
    for vip, port in ((VIP, 80), (BACKEND_IP, 8080)):
        services.update(service_key(vip, port, "tcp"), backend)


def bench_lab():
    """The dnat lab, its lb knowing the MACs of THREE's extra backends."""
    topo = dnat()
    extra = tuple(Neighbour("lb", "eth1", ip, mac) for ip, mac in THREE[1:])
    return builder.build(dataclasses.replace(topo, neighbours=topo.neighbours + extra))


def check_redirects(obj: BpfObject, program: str, frame: bytes, ctx, lab) -> None:
    """The floor has no counters: one run must redirect, or its figure would
    be the cost of passing."""
    with entered(lab.netns("lb")):
        result = obj.program(program).test_run(frame, ctx=ctx)
    if result.retval != XDP_REDIRECT:
        raise RuntimeError(f"{program} benchmark frame was not redirected (verdict {result.retval})")


def check_every_repetition(obj: BpfObject, before: int) -> None:
    """Every repetition since `before` were redirected must have done the full work."""
    verdicts = read_verdicts(obj.map("dnat_verdicts"))
    if verdicts["redirected"] - before != ROUNDS * REPEAT:
        raise RuntimeError(f"xdp_dnat benchmark did not rewrite every repetition: {verdicts}")


@contextlib.contextmanager
def hops_kept(obj: BpfObject, lab):
    """Next hops kept from the kernel's tables, as the loader keeps them."""
    slots = ServiceTable(DnatMaps.of(obj)).backend_slots()
    hops = HopTable.of(obj)
    keeper = Keeper(hops, lab.netns("lb"))
    try:
        keeper.start(slots)
        if not keeper.ready(10.0):
            raise RuntimeError("xdp_dnat benchmark: no next hops within 10 s")
        if len(hops.items()) != len(slots):
            raise RuntimeError("xdp_dnat benchmark: the backend's next hops were not kept")
        yield
    finally:
        keeper.stop()


def without(lab, frame: bytes, ctx) -> dict[str, float]:
    """xdp_dnat whole ("none"), with each of bench/ablation.py's parts taken
    out, and the floor with its next hop kept, each measured as `xdp_dnat`
    is (an established flow, next hops kept) in ROUNDS rounds that take every
    build in turn, the median over rounds: measured one build after the
    other, a run read some builds without a part as slower than the whole
    program (the machine's drift, not the part). Each build must redirect."""
    netns = lab.netns("lb")
    with tempfile.TemporaryDirectory(prefix="bpflab-ablation-") as work, contextlib.ExitStack() as stack:
        builds = {"none": object_path("xdp_dnat"), **ablation.built(Path(work))}
        runs: dict[str, tuple[BpfObject, str]] = {}
        for name, path in builds.items():
            obj = stack.enter_context(BpfObject(path))
            add_services(obj)
            stack.enter_context(hops_kept(obj, lab))
            runs[name] = (obj, "xdp_dnat")
        floor = stack.enter_context(BpfObject(BUILD_DIR / "bench" / "floor_dnat.bpf.o"))
        floor_services(floor)
        keep_lab_hop(floor, lab)
        runs["floor_dnat_nexthop"] = (floor, "floor_dnat_nexthop")
        samples: dict[str, list[int]] = {name: [] for name in runs}
        for r in range(ROUNDS + 1):
            for name, (obj, program) in runs.items():
                with entered(netns):
                    ns = obj.program(program).test_run(frame, repeat=REPEAT, ctx=ctx).duration_ns
                if r:  # round 0 only warms
                    samples[name].append(ns)
        for obj, program in runs.values():
            check_redirects(obj, program, frame, ctx, lab)
    return {name: statistics.median(v) for name, v in samples.items()}


def measure() -> dict[str, dict[str, float]]:
    """{"test_run_ns": each program's ns per packet, "test_run_ns_without":
    xdp_dnat's with each part taken out}."""
    lab = bench_lab()
    try:
        frame = frame_to_vip(lab)
        results = {}
        with BpfObject(BUILD_DIR / "bench" / "baseline.bpf.o") as obj:
            results["baseline"] = per_packet_ns(obj, "baseline", frame)
        for name, program in PROGRAMS.items():
            if name == "xdp_dnat":
                continue  # below: it needs a service and the lab's FIB
            with BpfObject(object_path(name), load=False) as obj:
                ring = getattr(program.loader, "ring", None)
                if ring:
                    obj.map(ring).set_max_entries(RING_BYTES)
                obj.load()
                drain = None
                if ring:
                    from bpflab.libbpf import RingBuffer

                    rb = RingBuffer(obj.map(ring), lambda raw: None)
                    drain = rb.consume
                results[name] = per_packet_ns(obj, name, frame, drain=drain)
                if ring:
                    rb.close()
        ctx = xdp_md(data=0, data_end=len(frame), ingress_ifindex=lab.ifindex("lb", "eth0"))
        with BpfObject(BUILD_DIR / "bench" / "floor_dnat.bpf.o") as obj:
            floor_services(obj)
            results["floor_dnat"] = per_packet_ns(obj, "floor_dnat", frame, ctx=ctx, netns=lab.netns("lb"))
            check_redirects(obj, "floor_dnat", frame, ctx, lab)
            keep_lab_hop(obj, lab)
            results["floor_dnat_nexthop"] = per_packet_ns(obj, "floor_dnat_nexthop", frame, ctx=ctx,
                                                          netns=lab.netns("lb"))
            check_redirects(obj, "floor_dnat_nexthop", frame, ctx, lab)
        with BpfObject(object_path("xdp_dnat")) as obj:
            add_services(obj)
            results["xdp_dnat_fib_per_packet"] = per_packet_ns(obj, "xdp_dnat", frame, ctx=ctx, netns=lab.netns("lb"))
            check_every_repetition(obj, 0)
            with hops_kept(obj, lab):  # as the loader runs it
                results["xdp_dnat"] = per_packet_ns(obj, "xdp_dnat", frame, ctx=ctx, netns=lab.netns("lb"))
            check_every_repetition(obj, ROUNDS * REPEAT)
        without_parts = without(lab, frame, ctx)
        with BpfObject(object_path("xdp_dnat")) as obj:
            add_services(obj, tuple(ip for ip, _ in THREE))
            results["xdp_dnat_3_backends"] = per_packet_ns(obj, "xdp_dnat", frame, ctx=ctx, netns=lab.netns("lb"))
            verdicts = read_verdicts(obj.map("dnat_verdicts"))
            used = {b.backend.ip for st in ServiceTable(DnatMaps.of(obj)).states() for b in st.backends if b.packets}
            if verdicts["redirected"] != ROUNDS * REPEAT or len(used) < 2:
                raise RuntimeError(f"xdp_dnat 3-backend benchmark: {verdicts}, backends used {sorted(used)}")
        return {"test_run_ns": results, "test_run_ns_without": without_parts}
    finally:
        lab.teardown()
