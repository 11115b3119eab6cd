"""Frames for xdp_dnat tests, the program run on them through test-run in
both directions, and what it must turn them into: lab.packets.rewrite, the
independent model (checksums recomputed from scratch, never incrementally;
tests/test_checksums.py holds it to scapy)."""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import sys

from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from bpflab.host.netns import entered
from bpflab.lab import packets
from bpflab.lab.pytest_plugin import skip_without
from bpflab.lab.topology import BACKEND_IP, VIP, dnat
from bpflab.libbpf import BpfObject, xdp_md
from bpflab.libbpf.testrun import BPF_F_TEST_SKB_CHECKSUM_COMPLETE  # 6.11+
from bpflab.loaders.objects import object_path
from bpflab.loaders.service_table import DnatConfig, DnatMaps, ServiceTable
from bpflab.loaders.services import FlowKey, Service
from bpflab.loaders.xdp_dnat import read_verdicts

# The dnat lab's wiring, from its topology.
_CLIENT, _LB_IN = dnat().endpoint("client", "eth0"), dnat().endpoint("lb", "eth0")
_LB_OUT, _BACKEND = dnat().endpoint("lb", "eth1"), dnat().endpoint("backend", "eth0")
CLIENT_MAC, LB_IN_MAC, LB_OUT_MAC, BACKEND_MAC = _CLIENT.mac, _LB_IN.mac, _LB_OUT.mac, _BACKEND.mac
CLIENT_IP = _CLIENT.ip
HTTP = Service.to(VIP, 80, "tcp", BACKEND_IP, 8080)
DNS = Service.to(VIP, 53, "udp", BACKEND_IP, 5353)
TC_ACT_OK, TC_ACT_REDIRECT = 0, 7


def flow_key(frame: bytes) -> FlowKey:
    """The connection map key of an untagged IPv4 TCP/UDP frame's direction,
    as the programs build it: addresses and ports as their network bytes
    (read natively). Offsets, not scapy: the edge tests call this 1000
    times, and dissecting was most of their time."""
    l4 = 14 + (frame[14] & 0x0F) * 4
    native = lambda raw: int.from_bytes(raw, sys.byteorder)  # noqa: E731
    return FlowKey(native(frame[26:30]), native(frame[30:34]), native(frame[l4:l4 + 2]),
                   native(frame[l4 + 2:l4 + 4]), frame[23])


def maps_json(services) -> dict[str, list]:
    """xdp_dnat's maps as a user of `bpflab run/csum --map NAME=FILE.json`
    writes them: each backend a slot, each service a table of one entry
    per backend, entry i naming the table's slot i (any size works for the
    program; the loader's are prime)."""
    backends, tables = [], []
    for s in services:
        key = {"vip": s.vip, "port": s.port, "proto": {"tcp": 6, "udp": 17}[s.proto]}
        first = len(backends)
        backends += [{"key": first + i, "value": {"ip": b.ip, "port": b.port, "weight": b.weight, "service": key}}
                     for i, b in enumerate(s.backends)]
        table = {"size": len(s.backends), "backends": len(s.backends), "entry": list(range(len(s.backends))),
                 "slot": list(range(first, len(backends)))}
        tables.append({"key": key, "value": [{"key": 0, "value": table}]})
    return {"services": tables, "backends": backends}


def map_args(tmp_path, services) -> list[str]:
    """`--map` arguments for maps_json(services), written under tmp_path."""
    import json

    args = []
    for name, entries in maps_json(services).items():
        (tmp_path / f"{name}.json").write_text(json.dumps(entries))
        args += ["--map", f"{name}={tmp_path / f'{name}.json'}"]
    return args


def client_frame(l4, *, dst=VIP, options=None, payload=b"") -> Ether:
    ip = IP(src=CLIENT_IP, dst=dst, options=options) if options else IP(src=CLIENT_IP, dst=dst)
    return Ether(src=CLIENT_MAC, dst=LB_IN_MAC) / ip / l4 / payload


def backend_frame(l4, *, src=BACKEND_IP, options=None, payload=b"") -> Ether:
    """A backend's reply to the client, as it reaches the lb's eth1."""
    ip = IP(src=src, dst=CLIENT_IP, options=options) if options else IP(src=src, dst=CLIENT_IP)
    return Ether(src=BACKEND_MAC, dst=LB_OUT_MAC) / ip / l4 / payload


def rewritten(frame: bytes, service: Service, smac: str = LB_OUT_MAC, dmac: str = BACKEND_MAC) -> bytes:
    """`frame` as xdp_dnat must send it to the backend."""
    return packets.rewrite(frame, dst=service.backend_ip, dport=service.backend_port, smac=smac, dmac=dmac)


def replied(frame: bytes, service: Service) -> bytes:
    """A backend's reply as dnat_return must hand it on: from the VIP and
    the service port (the MACs are the neighbour layer's, after the program)."""
    return packets.rewrite(frame, src=service.vip, sport=service.port)


@dataclasses.dataclass
class DnatRunner:
    """xdp_dnat loaded (not attached) and test-run as if frames arrived on
    lb's eth0, inside lb's namespace so bpf_fib_lookup sees lb's tables."""

    obj: BpfObject
    netns: str
    ifindex: int
    maglev_size: int | None = None  # None: the loader's default
    table_backends: int | None = None  # None: the object's declared room

    def __post_init__(self):
        self.table = ServiceTable(DnatMaps.of(self.obj), self.maglev_size, self.table_backends)

    def run(self, frame: bytes):
        with entered(self.netns):
            ctx = xdp_md(data=0, data_end=len(frame), ingress_ifindex=self.ifindex)
            return self.obj.program("xdp_dnat").test_run(frame, ctx=ctx)

    def verdicts(self) -> dict[str, int]:
        return read_verdicts(self.obj.map("dnat_verdicts"))


@contextlib.contextmanager
def dnat_runner(lab, services=(HTTP, DNS), maglev_size=None, max_services=None, max_backends=None,
                table_backends=None):
    skip_without("xdp_test_run_ctx")  # bpf_fib_lookup needs the ingress interface
    with BpfObject(object_path("xdp_dnat"), load=False) as obj:
        if max_services:
            obj.map("services").set_max_entries(max_services)
        if max_backends:
            obj.map("backends").set_max_entries(max_backends)
            obj.map("backend_packets").set_max_entries(max_backends)
        obj.load()
        runner = DnatRunner(obj, lab.netns("lb"), lab.ifindex("lb", "eth0"), maglev_size, table_backends)
        for s in services:
            runner.table.put(s)
        yield runner


class ReturnRunner:
    """dnat_return (the tc program of the return path) loaded and test-run
    on backends' replies. bpf_redirect_neigh only records where the packet
    would go, so no lab is needed: the verdict is TC_ACT_REDIRECT."""

    SERVICE_IFINDEX = 7  # where replies would leave; any interface index

    def __init__(self, obj: BpfObject, maglev_size: int | None = None):
        self.obj = obj
        obj.map("dnat_config").bind(ctypes.c_uint32, DnatConfig).update(0, DnatConfig(self.SERVICE_IFINDEX))
        self.table = ServiceTable(DnatMaps.of(obj), maglev_size)

    def connect(self, reply: bytes, service: Service) -> None:
        """Record the connection `reply` belongs to, as the forward path does
        when the client's first packet to `service` goes to the backend
        (tests/test_xdp_dnat_balance.py checks that the forward path does)."""
        self.table.maps.replies.update(flow_key(reply), service.key())

    def disconnect_all(self) -> None:
        self.table.maps.replies.clear()

    def run(self, frame: bytes, *, complete: bool = False):
        """`complete`: the skb carries CHECKSUM_COMPLETE, and the kernel
        fails the run (EBADMSG) if the program leaves skb->csum stale."""
        return self.obj.program("dnat_return").test_run(
            frame, flags=BPF_F_TEST_SKB_CHECKSUM_COMPLETE if complete else 0)

    def verdicts(self) -> dict[str, int]:
        return read_verdicts(self.obj.map("dnat_verdicts"))


@contextlib.contextmanager
def return_runner(services=(HTTP, DNS), maglev_size=None):
    with BpfObject(object_path("xdp_dnat")) as obj:
        runner = ReturnRunner(obj, maglev_size)
        for s in services:
            runner.table.put(s)
        yield runner


def verdict_delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}
