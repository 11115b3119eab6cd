"""scale: xdp_dnat's costs as the cluster grows, each measured the way a
user of a Service load balancer judges them.

- `services`: for 1, 1,000 and 10,000 services of 10 backends each (tables
  of the default size, cut as the loader cuts them): `program_s`, from an
  empty instance to every table in place through ServiceTable.put_many
  (what `service add`, `apply` and the loader's start use);
  `add_backend_ms`, one backend added to one service; `kernel_bytes`, the
  instance's maps as the kernel accounts them (`memlock` of each map's
  fdinfo, every service's table included); `xdp_dnat_ns`, per packet, a
  new flow and an established one.
- `flows`: per packet for an established flow with 1,000 flows pinned (the
  frames measured) and with 1,000,000 more.

Per packet: BPF_PROG_TEST_RUN of one frame at a time (repeat 1: the
kernel times the program alone, not the system call), in the lb's namespace
of the dnat lab so bpf_fib_lookup sees its routes and neighbours; each of
FRAMES frames (client source ports) first as a new flow, then again as an
established one; the median of each. Every run must redirect.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

from scapy.layers.inet import TCP

from bpflab.host.netns import entered
from bpflab.lab import builder, dnat
from bpflab.lab.frames import towards_peer
from bpflab.lab.topology import VIP, Neighbour
from bpflab.libbpf import BpfObject, Map, xdp_md
from bpflab.loaders import maglev
from bpflab.loaders.objects import object_path
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.service_table import DnatMaps, ServiceTable
from bpflab.loaders.services import Backend, FlowKey, Service
from bpflab.loaders.xdp_dnat import DEFAULT_TABLE_BACKENDS, cut_tables, read_verdicts

SERVICE_COUNTS = (1, 1000, 10_000)
BACKENDS = 10
FRAMES = 1000
MORE_FLOWS = 1_000_000
XDP_REDIRECT = 4
# The measured service's backends: neighbours of the lb's backend side, so
# every packet takes the full path (FIB lookup, MACs, redirect).
MEASURED = tuple((f"10.244.1.{60 + i}", f"02:00:00:00:03:{60 + i:02x}") for i in range(BACKENDS))
ADDED = ("10.244.1.70", "02:00:00:00:03:46")  # the backend add_backend_ms adds (with one service: to the measured one)


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
    extra = tuple(Neighbour("lb", "eth1", ip, mac) for ip, mac in (*MEASURED, ADDED))
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
        for name in ("backends", "backend_packets"):
            obj.map(name).set_max_entries(services * BACKENDS + 64)
        for name in ("dnat_flows", "dnat_replies"):
            obj.map(name).set_max_entries(flows + 4 * FRAMES)
        template = cut_tables(obj, maglev.DEFAULT_SIZE, DEFAULT_TABLE_BACKENDS)
        try:
            obj.load()
        finally:
            template.close()
    except BaseException:
        obj.close()
        raise
    return obj


def client_frames(lab) -> list[bytes]:
    return [bytes(towards_peer(lab.topology, "client", dst=VIP) / TCP(sport=20000 + i, dport=80, flags="S"))
            for i in range(FRAMES)]


def per_packet_ns(obj: BpfObject, lab, frames: list[bytes]) -> dict[str, float]:
    """Median ns per packet of each frame as a new flow, then again as an
    established one."""
    got: dict[str, list[int]] = {"new": [], "established": []}
    program, ifindex = obj.program("xdp_dnat"), lab.ifindex("lb", "eth0")
    with entered(lab.netns("lb")):
        for kind, samples in got.items():
            for frame in frames:
                result = program.test_run(frame, ctx=xdp_md(data=0, data_end=len(frame), ingress_ifindex=ifindex))
                if result.retval != XDP_REDIRECT:
                    raise RuntimeError(f"xdp_dnat scale frame ({kind}) not redirected: "
                                       f"{read_verdicts(obj.map('dnat_verdicts'))}")
                samples.append(result.duration_ns)
    return {kind: statistics.median(samples) for kind, samples in got.items()}


def measure_services(lab, frames: list[bytes], count: int) -> dict:
    with loaded(count) as obj:
        table = ServiceTable(DnatMaps.of(obj), maglev.DEFAULT_SIZE, DEFAULT_TABLE_BACKENDS)
        wanted = [measured_service(), *other_services(count - 1)]
        t0 = time.perf_counter()
        table.put_many(wanted)
        t1 = time.perf_counter()
        last = wanted[-1]
        table.add_backend(last.vip, last.port, last.proto, Backend(ADDED[0], 8080))
        t2 = time.perf_counter()
        if len(table.services()) != count:
            raise RuntimeError(f"scale: {len(table.services())} services in the map, not {count}")
        memory = kernel_bytes(obj, table)
        ns = per_packet_ns(obj, lab, frames)
    return {"services": count, "backends": count * BACKENDS + 1, "program_s": round(t1 - t0, 3),
            "add_backend_ms": round((t2 - t1) * 1000, 2), "kernel_bytes": memory,
            "xdp_dnat_ns": {kind: round(v, 1) for kind, v in ns.items()}}


def pin_flows(table: ServiceTable, count: int) -> None:
    """`count` flows of other clients pinned to the measured service's
    first backend, as the program pins them."""
    slot = next(b.slot for s in table.states() for b in s.backends)
    vip, chunk = ip_be32(VIP), 100_000
    for start in range(0, count, chunk):
        table.maps.flows.update_many([(FlowKey(ip_be32("11.0.0.0") + (i << 8), vip, i & 0xFFFF, 0x5000, 6), slot)
                                      for i in range(start, min(count, start + chunk))])


def measure_flows(lab, frames: list[bytes]) -> list[dict]:
    out = []
    for more in (0, MORE_FLOWS):
        with loaded(1, more) as obj:
            table = ServiceTable(DnatMaps.of(obj), maglev.DEFAULT_SIZE, DEFAULT_TABLE_BACKENDS)
            table.put(measured_service())
            pin_flows(table, more)
            ns = per_packet_ns(obj, lab, frames)
        out.append({"flows": FRAMES + more, "established_ns": round(ns["established"], 1)})
    return out


def measure(counts: tuple[int, ...] = SERVICE_COUNTS) -> dict:
    lab = scale_lab()
    try:
        frames = client_frames(lab)
        return {"services": [measure_services(lab, frames, n) for n in counts], "flows": measure_flows(lab, frames)}
    finally:
        lab.teardown()
