"""lab_mpps: one UDP flow client -> VIP -> backend through the dnat lab, for
XDP DNAT in native and generic mode and for an nftables DNAT rule; the
floor program (bench/bpf/floor_dnat.bpf.c) in native mode, with its FIB
lookup and with a next hop from a map instead, so xdp_dnat's figure is read
against what any XDP DNAT costs on this path; its forward-only program (the
MACs and the redirect), the ceiling of any XDP program on this path; and
the generator's own ceiling (the sink at the lb's first interface, no
datapath), so a figure close to it is known to be limited by the generator.

The generator is BPF_PROG_TEST_RUN in live-frames mode, run by one thread
inside the client namespace: the kernel sends frames out of the client's
eth0 as fast as the receiving path takes them, so the measurement is of the
datapath, not of a user-space sender. The sink is an XDP program on the
backend that counts and drops.
"""
from __future__ import annotations

import contextlib
import ctypes
import socket
import statistics
import time

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from bpflab.host.netns import entered
from bpflab.lab import builder, dnat
from bpflab.lab.topology import BACKEND_IP, VIP
from bpflab.libbpf import BpfObject, xdp_md
from bpflab.libbpf.testrun import BPF_F_TEST_XDP_LIVE_FRAMES
from bpflab.loaders.interfaces import XdpOnInterface
from bpflab.loaders.objects import BUILD_DIR
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.services import BackendSlot, ServiceKey, service_key
from bpflab.loaders.xdp_dnat import XdpDnat

SERVICE = f"{VIP}:53/udp={BACKEND_IP}:5353"
NFT_RULES = f"""
table ip bench {{
    chain prerouting {{
        type nat hook prerouting priority dstnat;
        ip daddr {VIP} udp dport 53 dnat to {BACKEND_IP}:5353
    }}
}}
"""


GEN_HEADER_BYTES = 54


class GenConfig(ctypes.Structure):
    """gen.bpf.c's struct gen_config."""
    _fields_ = [("ifindex", ctypes.c_uint32), ("header", ctypes.c_uint8 * GEN_HEADER_BYTES),
                ("csum0", ctypes.c_uint16), ("first_port", ctypes.c_uint16), ("ports", ctypes.c_uint32),
                ("sent", ctypes.c_uint32), ("udp", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 5)]

    @classmethod
    def of(cls, ifindex: int, frame: bytes, new_flows: tuple[int, int] | None = None) -> GenConfig:
        """Every frame `frame`; with new_flows=(first_port, ports), every
        frame a new connection: the source port steps through `ports` values
        from `first_port` (frame: Ethernet, IPv4 without options, TCP or UDP)."""
        if len(frame) < GEN_HEADER_BYTES:
            raise ValueError(f"generator frame of {len(frame)} bytes: at least {GEN_HEADER_BYTES} (pad it)")
        cfg = cls(ifindex)
        if new_flows is None:
            cfg.header[:] = frame[:GEN_HEADER_BYTES]
            return cfg
        packet = Ether(frame)
        l4 = packet[TCP] if TCP in packet else packet[UDP]
        l4.sport, l4.chksum = 0, None
        template = bytes(packet)  # the checksum scapy works out with port 0
        offset = 14 + 20 + (16 if TCP in packet else 6)
        cfg.header[:] = template[:GEN_HEADER_BYTES]
        cfg.csum0 = int.from_bytes(template[offset:offset + 2], "little")  # as the program reads it: memory order
        cfg.first_port, cfg.ports, cfg.udp = new_flows[0], new_flows[1], int(UDP in packet)
        return cfg


class Nexthop(ctypes.Structure):
    """floor_dnat.bpf.c's struct nexthop."""
    _fields_ = [("ifindex", ctypes.c_uint32), ("smac", ctypes.c_uint8 * 6), ("dmac", ctypes.c_uint8 * 6)]

    @classmethod
    def of(cls, ifindex: int, smac: str, dmac: str) -> Nexthop:
        hop = cls(ifindex)
        hop.smac[:] = bytes.fromhex(smac.replace(":", ""))
        hop.dmac[:] = bytes.fromhex(dmac.replace(":", ""))
        return hop


def keep_lab_hop(floor: BpfObject, lab) -> None:
    """The floor's next hop map told the lb's eth1 and the backend's MAC
    (what the lb's neighbour table holds for it)."""
    hop = Nexthop.of(lab.ifindex("lb", "eth1"), lab.endpoint("lb", "eth1").mac, lab.endpoint("backend", "eth0").mac)
    floor.map("nexthop").bind(ctypes.c_uint32, Nexthop).update(0, hop)


FLOORS = ("floor_dnat", "floor_dnat_nexthop", "floor_forward")  # modes named after their programs


class Floor:
    """The floor program on the lb's eth0, native, with the lab's one service;
    the next-hop variant told the lb's eth1 and the backend's MAC (what the
    lb's neighbour table holds for it)."""

    def __init__(self, lab, program: str):
        self.obj = BpfObject(BUILD_DIR / "bench" / "floor_dnat.bpf.o")
        try:
            self.obj.map("services").bind(ServiceKey, BackendSlot).update(
                service_key(VIP, 53, "udp"), BackendSlot(ip_be32(BACKEND_IP), socket.htons(5353), 1))
            keep_lab_hop(self.obj, lab)
            self.link = XdpOnInterface(self.obj.program(program).fd, "eth0", lab.netns("lb"), "native")
        except BaseException:
            self.obj.close()
            raise

    def close(self) -> None:
        self.link.close()
        self.obj.close()


def napi_at_the_lb(lab) -> None:
    """Frames sent into a veth by XDP need NAPI on the receiving end: GRO
    provides it where no native XDP program is attached (nftables, iptables,
    generic XDP), else the stack never sees them."""
    lab.run("lb", ["ethtool", "-K", "eth0", "gro", "on"], check=True)


def template(lab) -> bytes:
    client, lb = lab.endpoint("client", "eth0"), lab.endpoint("lb", "eth0")
    return bytes(Ether(src=client.mac, dst=lb.mac) / IP(src=client.ip, dst=VIP, ttl=64) / UDP(sport=4000, dport=53)
                 / bytes(18))  # 60 bytes: a minimum-size Ethernet frame


def generate(lab, gen: BpfObject, packets: int, frame: bytes | None = None,
             new_flows: tuple[int, int] | None = None) -> float:
    """Send `packets` frames out of the client's eth0 (`frame`, the UDP
    template by default; see GenConfig.of for `new_flows`); returns the wall
    time it took."""
    frame = frame or template(lab)
    ifindex = lab.ifindex("client", "eth0")
    gen.map("gen_config").bind(ctypes.c_uint32, GenConfig).update(0, GenConfig.of(ifindex, frame, new_flows))
    ctx = xdp_md(data=0, data_end=len(frame), ingress_ifindex=ifindex)
    with entered(lab.netns("client")):
        start = time.perf_counter()
        gen.program("gen").test_run(frame, repeat=packets, ctx=ctx, flags=BPF_F_TEST_XDP_LIVE_FRAMES, out_size=0)
        return time.perf_counter() - start


def beyond(mpps: float, generator_mpps: float) -> float:
    """ns per packet beyond the generator's own (1/rate - 1/generator's)."""
    return round(1e3 / mpps - 1e3 / generator_mpps, 1)


SETTLE_S = 0.05  # frames still in flight when the generator returns


class Sink:
    """The sink program on `node`'s eth0 (native): counts and drops."""

    def __init__(self, lab, node: str):
        self.obj = BpfObject(BUILD_DIR / "bench" / "sink.bpf.o")
        try:
            self.link = XdpOnInterface(self.obj.program("sink").fd, "eth0", lab.netns(node), "native")
        except BaseException:
            self.obj.close()
            raise

    def count(self) -> int:
        return sum(self.obj.map("sink_packets").bind(ctypes.c_uint32, ctypes.c_uint64).lookup(0))

    def take(self, send) -> tuple[float, float]:
        """(frames counted per second, fraction of them delivered) of one
        `send()`, which sends frames and returns (how many, wall time)."""
        before = self.count()
        packets, elapsed = send()
        time.sleep(SETTLE_S)
        received = self.count() - before
        return received / elapsed, received / packets

    def close(self) -> None:
        self.link.close()
        self.obj.close()


MODES = ("xdp_native", "xdp_generic", "nft_dnat", "floor_dnat", "floor_dnat_nexthop", "floor_forward", "generator")


class Setup:
    """One datapath in a dnat lab of its own, with its generator and sink."""

    def __init__(self, mode: str, stack: contextlib.ExitStack):
        self.lab = builder.build(dnat())
        stack.callback(self.lab.teardown)
        self.gen = stack.enter_context(BpfObject(BUILD_DIR / "bench" / "gen.bpf.o"))
        # The generator's own ceiling: the sink drops at the lb's first
        # interface, so no datapath runs at all.
        self.sink = Sink(self.lab, "lb" if mode == "generator" else "backend")
        stack.callback(self.sink.close)
        if mode in FLOORS:
            stack.callback(Floor(self.lab, mode).close)
        elif mode == "xdp_native":
            stack.callback(XdpDnat("eth0", netns=self.lab.netns("lb"), mode="native", services=[SERVICE],
                                   return_path=False).close)
        elif mode != "generator":
            napi_at_the_lb(self.lab)
            if mode == "xdp_generic":
                stack.callback(XdpDnat("eth0", netns=self.lab.netns("lb"), mode="generic", services=[SERVICE],
                                       return_path=False).close)
            else:
                self.lab.run("lb", ["nft", "-f", "-"], input=NFT_RULES, check=True)

    def run(self, packets: int) -> tuple[float, float]:
        """(Mpps counted at the sink, % of the frames delivered)."""
        rate, delivered = self.sink.take(lambda: (packets, generate(self.lab, self.gen, packets)))
        return rate / 1e6, delivered * 100


def measure(modes: tuple[str, ...] = MODES, runs: int = 3, packets: int = 2_000_000) -> dict[str, dict]:
    """Median Mpps (packets counted at the sink per second) of each mode over
    `runs` rounds, each round taking every mode in turn: the machine's drift
    (other load, frequency, the generator's own rate) falls on every
    datapath alike, not on whichever ran first (measured one mode after the
    other, the nftables ratio read 3.6x in one run and 7.4x in the next)."""
    with contextlib.ExitStack() as stack:
        setups = {mode: Setup(mode, stack) for mode in modes}
        for setup in setups.values():
            generate(setup.lab, setup.gen, 100_000)  # warm up: neighbour entries, conntrack, caches
        got: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
        for _ in range(runs):
            for mode, setup in setups.items():
                got[mode].append(setup.run(packets))
    out = {}
    for mode, samples in got.items():
        rates = [r for r, _ in samples]
        median = statistics.median(rates)
        out[mode] = {"median_mpps": round(median, 3), "spread_pct": round((max(rates) - min(rates)) / median * 100, 1),
                     "runs_mpps": [round(r, 3) for r in rates], "packets_per_run": packets,
                     "delivered_pct": round(min(d for _, d in samples), 1)}
    return out
