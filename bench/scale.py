"""scale: xdp_dnat's costs as the cluster grows, each measured the way a
user of a Service load balancer judges them.

- `services`: for 1, 1,000 and 10,000 services of 10 backends each (tables
  of the default size, cut as the loader cuts them): `program_s`, from an
  empty instance to every table in place through ServiceTable.put_many
  (what `service add`, `apply` and the loader's start use);
  `add_backend_ms`, one backend added to one service (the median of ADDS,
  each to another service; `add_backend_max_ms` the slowest: most of it is
  the kernel's wait for a grace period after a table swap, 4 ms ticks here); `kernel_bytes`, the
  instance's maps as the kernel accounts them (`memlock` of each map's
  fdinfo, every service's table included); `xdp_dnat_ns`, per packet, a
  new flow and an established one.
  In the lab (bench/newflows.py: every packet a new connection), per
  packet beyond the generator's cost: `xdp_dnat_lab_ns` (the same instance
  attached), `nft_ns` and `iptables_ns` (kube-proxy's shapes for the same
  services, bench/peers.py; `nft_program_s`, `iptables_program_s` the time
  their rules took to load).
- `flows`: per packet for an established flow with 6,000 flows pinned (the
  rounds' own) and with 1,000,000 more.
- `lab_generator`: the generator's own rate of new connections.

Per packet, as the loader runs it (next hops kept): BPF_PROG_TEST_RUN of
one frame at a time (repeat 1: the kernel times the program alone, not the
system call), in the lb's namespace of the dnat lab (its routes and
neighbours give the hops, and bpf_fib_lookup where there is none); FRAMES
frames (client source ports) first as new flows, then again as established
ones, the median of each; ROUNDS rounds taking every instance in turn (a
warm-up round first), the median over rounds. Every run must redirect.
"""
from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from pathlib import Path

from scapy.layers.inet import TCP

from bpflab.bench import newflows, peers
from bpflab.bench.datapath import Sink, beyond, napi_at_the_lb
from bpflab.host.netns import entered
from bpflab.lab import builder, dnat
from bpflab.lab.frames import towards_peer
from bpflab.lab.topology import VIP, Neighbour
from bpflab.libbpf import BpfObject, Map, xdp_md
from bpflab.loaders import maglev
from bpflab.loaders.interfaces import XdpOnInterface
from bpflab.loaders.nexthops import HopTable, Keeper
from bpflab.loaders.objects import object_path
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.service_table import DnatMaps, ServiceTable
from bpflab.loaders.services import Backend, FlowKey, Service
from bpflab.loaders.xdp_dnat import DEFAULT_TABLE_BACKENDS, backend_map_sizes, cut_tables, read_verdicts

SERVICE_COUNTS = (1, 1000, 10_000)
BACKENDS = 10
FRAMES = 1000
ROUNDS = 5
KEEPER_FIRST_PASS_S = 120.0  # a route lookup per backend: 100,001 of them at 10,000 services
MORE_FLOWS = 1_000_000
XDP_REDIRECT = 4
# The measured service's backends: neighbours of the lb's backend side, so
# every packet takes the full path (FIB lookup, MACs, redirect).
MEASURED = tuple((f"10.244.1.{60 + i}", f"02:00:00:00:03:{60 + i:02x}") for i in range(BACKENDS))
ADDS = 5  # backends added one at a time, each to another service: add_backend_ms is their median
# The backends add_backend_ms adds, neighbours too (with one service they join the measured one).
ADDED = tuple((f"10.244.1.{70 + i}", f"02:00:00:00:03:{70 + i:02x}") for i in range(ADDS))


def measured_service() -> Service:
    return Service(VIP, 80, "tcp", tuple(Backend(ip, 8080) for ip, _ in MEASURED))


def other_services(n: int) -> list[Service]:
    """n services besides the measured one, 10 backends each, none shared."""
    out = []
    for i in range(n):
        first = i * BACKENDS
        out.append(Service(f"10.97.{i // 250}.{i % 250 + 1}", 80, "tcp", tuple(
            Backend(f"10.{100 + (first + b) // 65536}.{(first + b) // 256 % 256}.{(first + b) % 256}", 8080)
            for b in range(BACKENDS))))
    return out


def scale_lab():
    topo = dnat()
    extra = tuple(Neighbour("lb", "eth1", ip, mac) for ip, mac in (*MEASURED, *ADDED))
    return builder.build(dataclasses.replace(topo, neighbours=topo.neighbours + extra))


def memlock(fd: int) -> int:
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("memlock:"):
            return int(line.split()[1])
    raise RuntimeError(f"no memlock in the fdinfo of fd {fd}")


def kernel_bytes(obj: BpfObject, table: ServiceTable) -> int:
    """Every map of the instance, each service's table (an inner map) too."""
    total = sum(memlock(m.fd) for m in obj.maps.values())
    for _, inner_id in table.maps.services.items():
        with Map.from_id(inner_id) as inner:
            total += memlock(inner.fd)
    return total


def loaded(services: int, flows: int = 0) -> BpfObject:
    """xdp_dnat loaded as its loader loads it (tables cut to the default
    size and backends), with room for `services` services and `flows` flows
    besides the frames'; not attached."""
    obj = BpfObject(object_path("xdp_dnat"), load=False)
    try:
        obj.map("services").set_max_entries(services + 8)
        for name, size in backend_map_sizes(services * BACKENDS + 64).items():
            obj.map(name).set_max_entries(size)
        for name in ("dnat_flows", "dnat_replies"):  # and the rounds' flows, and a lab run's
            obj.map(name).set_max_entries(flows + 2 * (ROUNDS + 1) * FRAMES + newflows.MAX_PACKETS)
        template = cut_tables(obj, maglev.DEFAULT_SIZE, DEFAULT_TABLE_BACKENDS)
        try:
            obj.load()
        finally:
            template.close()
    except BaseException:
        obj.close()
        raise
    return obj


def client_frames(lab, first_port: int = 20000) -> list[bytes]:
    return [bytes(towards_peer(lab.topology, "client", dst=VIP) / TCP(sport=first_port + i, dport=80, flags="S"))
            for i in range(FRAMES)]


def per_packet_ns(obj: BpfObject, lab, frames: list[bytes]) -> tuple[float, float]:
    """Median ns per packet of each frame as a new flow, then again as an
    established one."""
    program, ifindex = obj.program("xdp_dnat"), lab.ifindex("lb", "eth0")

    def run(frame: bytes) -> int:
        result = program.test_run(frame, ctx=xdp_md(data=0, data_end=len(frame), ingress_ifindex=ifindex))
        if result.retval != XDP_REDIRECT:
            raise RuntimeError(f"xdp_dnat scale frame not redirected: {read_verdicts(obj.map('dnat_verdicts'))}")
        return result.duration_ns

    with entered(lab.netns("lb")):
        new = [run(frame) for frame in frames]
        established = [run(frame) for frame in frames]
    return statistics.median(new), statistics.median(established)


def interleaved(lab, objs: list[BpfObject]) -> list[dict[str, float]]:
    """Per packet of each instance, new flow and established, measured in
    ROUNDS rounds that take the instances in turn (each round's flows fresh),
    the median over rounds: the machine's drift (other load, frequency,
    caches) falls on every instance alike, not on whichever came first."""
    got: list[dict[str, list[float]]] = [{"new": [], "established": []} for _ in objs]
    for r in range(ROUNDS + 1):
        frames = client_frames(lab, 20000 + r * FRAMES)
        for obj, samples in zip(objs, got, strict=True):
            new, established = per_packet_ns(obj, lab, frames)
            if r:  # round 0 only warms: code, caches, the lab's namespace
                samples["new"].append(new)
                samples["established"].append(established)
    return [{kind: round(statistics.median(v), 1) for kind, v in samples.items()} for samples in got]


def program_services(obj: BpfObject, count: int) -> dict:
    """`count` services into an empty instance, then one backend added."""
    table = ServiceTable(DnatMaps.of(obj), maglev.DEFAULT_SIZE, DEFAULT_TABLE_BACKENDS)
    wanted = [measured_service(), *other_services(count - 1)]
    t0 = time.perf_counter()
    table.put_many(wanted)
    t1 = time.perf_counter()
    added = []
    for k in range(ADDS):  # each to another service, spread over the map
        service = wanted[-1 - k * count // ADDS]
        start = time.perf_counter()
        table.add_backend(service.vip, service.port, service.proto,
                          Backend(ADDED[k][0], 8080))
        added.append((time.perf_counter() - start) * 1000)
    if len(table.services()) != count:
        raise RuntimeError(f"scale: {len(table.services())} services in the map, not {count}")
    return {"services": count, "backends": count * BACKENDS + ADDS, "program_s": round(t1 - t0, 3),
            "add_backend_ms": round(statistics.median(added), 2), "add_backend_max_ms": round(max(added), 2),
            "kernel_bytes": kernel_bytes(obj, table)}


def pin_flows(obj: BpfObject, count: int) -> None:
    """The measured service, and `count` flows of other clients pinned to
    its first backend, as the program pins them."""
    table = ServiceTable(DnatMaps.of(obj), maglev.DEFAULT_SIZE, DEFAULT_TABLE_BACKENDS)
    table.put(measured_service())
    slot = next(b.slot for s in table.states() for b in s.backends)
    vip, chunk = ip_be32(VIP), 100_000
    for start in range(0, count, chunk):
        table.maps.flows.update_many([(FlowKey(ip_be32("11.0.0.0") + (i << 8), vip, i & 0xFFFF, 0x5000, 6), slot)
                                      for i in range(start, min(count, start + chunk))])


def measure(counts: tuple[int, ...] = SERVICE_COUNTS) -> dict:
    lab = scale_lab()
    with contextlib.ExitStack() as stack:
        stack.callback(lab.teardown)
        by_count = [stack.enter_context(loaded(n)) for n in counts]
        rows = [program_services(obj, n) for obj, n in zip(by_count, counts, strict=True)]
        by_flows = [stack.enter_context(loaded(1, more)) for more in (0, MORE_FLOWS)]
        for obj, more in zip(by_flows, (0, MORE_FLOWS), strict=True):
            pin_flows(obj, more)
        for obj in by_count + by_flows:  # as the loader runs it: next hops kept
            keeper = Keeper(HopTable.of(obj), lab.netns("lb"))
            stack.callback(keeper.stop)
            keeper.start(ServiceTable(DnatMaps.of(obj), maglev.DEFAULT_SIZE, DEFAULT_TABLE_BACKENDS).backend_slots())
            if not keeper.ready(KEEPER_FIRST_PASS_S):
                raise RuntimeError(f"scale: next hops not worked out within {KEEPER_FIRST_PASS_S} s")
        ns = interleaved(lab, by_count + by_flows)
        generator = in_the_lab(lab, by_count, rows)
    for row, figures in zip(rows, ns, strict=False):
        row["xdp_dnat_ns"] = figures
    flows = [{"flows": more + (ROUNDS + 1) * FRAMES, "established_ns": figures["established"]}
             for more, figures in zip((0, MORE_FLOWS), ns[len(counts):], strict=True)]
    return {"services": rows, "flows": flows, "lab_generator": generator}


def forget_flows(obj: BpfObject) -> None:
    maps = DnatMaps.of(obj)
    for flows in (maps.flows, maps.replies):
        flows.delete_many([key for key, _ in flows.items_batch()], missing_ok=True)


def in_the_lab(lab, instances: list[BpfObject], rows: list[dict]) -> dict:
    """Per new connection in the lab, beyond the generator's cost, at each
    service count: xdp_dnat (each instance attached in turn, its hops kept)
    and kube-proxy's two shapes for the same services (their rules loaded,
    `*_program_s` the time that took). Returns the generator's ceiling."""
    napi_at_the_lb(lab)
    generator = newflows.generator_ceiling(lab)
    gen_mpps = generator["median_mpps"]
    gen, sink = newflows.Generator(lab), Sink(lab, "backend")
    try:
        for obj, row in zip(instances, rows, strict=True):
            link = XdpOnInterface(obj.program("xdp_dnat").fd, "eth0", lab.netns("lb"), "native")
            try:
                got = newflows.rate(gen, sink, lambda obj=obj: forget_flows(obj))
            finally:
                link.close()
            row["xdp_dnat_lab_ns"] = beyond(got["median_mpps"], gen_mpps)
            row["lab_runs"] = {"xdp_dnat": got}
            services = peers.ordered(measured_service(), other_services(row["services"] - 1))
            for shape in peers.SHAPES:
                start = time.perf_counter()
                peers.load(lab, shape, services)
                row[f"{shape}_program_s"] = round(time.perf_counter() - start, 2)
                try:
                    got = newflows.rate(gen, sink, lambda: peers.forget_connections(lab))
                finally:
                    peers.unload(lab)
                row[f"{shape}_ns"] = beyond(got["median_mpps"], gen_mpps)
                row["lab_runs"][shape] = got
    finally:
        sink.close()
        gen.close()
    return generator
