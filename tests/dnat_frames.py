"""Frames for xdp_dnat tests and what the program must turn them into,
computed independently with scapy's full checksum recomputation."""
from __future__ import annotations

import contextlib
import dataclasses

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from loaders.libbpf import BpfObject, entered, xdp_md
from loaders.objects import object_path
from loaders.services import Service, ServiceTable
from loaders.xdp_dnat import read_verdicts

CLIENT_MAC, LB_IN_MAC, LB_OUT_MAC, BACKEND_MAC = "02:00:00:00:02:02", "02:00:00:00:02:01", "02:00:00:00:03:01", "02:00:00:00:03:05"
CLIENT_IP, VIP, BACKEND_IP = "10.0.1.2", "10.96.0.10", "10.244.1.5"
HTTP = Service(VIP, 80, "tcp", BACKEND_IP, 8080)
DNS = Service(VIP, 53, "udp", BACKEND_IP, 5353)


def client_frame(l4, *, dst=VIP, options=None, payload=b"") -> Ether:
    ip = IP(src=CLIENT_IP, dst=dst, options=options) if options else IP(src=CLIENT_IP, dst=dst)
    return Ether(src=CLIENT_MAC, dst=LB_IN_MAC) / ip / l4 / payload


def rewritten(frame: bytes, service: Service, smac: str = LB_OUT_MAC, dmac: str = BACKEND_MAC) -> bytes:
    """`frame` as xdp_dnat must send it: destination and MACs replaced,
    checksums fully recomputed by scapy (a UDP checksum of 0 stays 0)."""
    p = Ether(frame)
    p.src, p.dst = smac, dmac
    p[IP].dst = service.backend_ip
    del p[IP].chksum
    l4 = p[TCP] if TCP in p else p[UDP]
    l4.dport = service.backend_port
    if not (UDP in p and p[UDP].chksum == 0):
        del l4.chksum
    return bytes(p)


@dataclasses.dataclass
class DnatRunner:
    """xdp_dnat loaded (not attached) and test-run as if frames arrived on
    lb's eth0, inside lb's namespace so bpf_fib_lookup sees lb's tables."""

    obj: BpfObject
    netns: str
    ifindex: int

    @property
    def table(self) -> ServiceTable:
        return ServiceTable(self.obj.map("services"), self.obj.map("service_by_backend"))

    def run(self, frame: bytes):
        with entered(self.netns):
            ctx = xdp_md(data=0, data_end=len(frame), ingress_ifindex=self.ifindex)
            return self.obj.program("xdp_dnat").test_run(frame, ctx=ctx)

    def verdicts(self) -> dict[str, int]:
        return read_verdicts(self.obj.map("dnat_verdicts"))


@contextlib.contextmanager
def dnat_runner(lab, services=(HTTP, DNS)):
    with BpfObject(object_path("xdp_dnat")) as obj:
        runner = DnatRunner(obj, lab.netns("lb"), lab.ifindex("lb", "eth0"))
        for s in services:
            runner.table.add(s)
        yield runner


def verdict_delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}
