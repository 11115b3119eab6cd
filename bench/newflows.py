"""Per packet through the dnat lab when every packet opens a new connection:
what a Service datapath pays per connection, where kube-proxy's rules are
walked (conntrack serves a known connection without them, so one flow
would show the same cost at any service count).

The generator (gen.bpf.c, BPF_PROG_TEST_RUN's live frames from the client
namespace) sends TCP SYNs to the measured service, the source port stepping
through up to 64,000 values, so every frame of a run is a connection the lb
has not seen; before each run the caller's `forget` empties what the lb
remembers of connections (conntrack, xdp_dnat's flows). The sink is an XDP
program on the backend that counts and drops. A run lasts about RUN_S,
sized from a short probe, so a slow datapath (iptables at 10,000 services)
is measured in seconds, not minutes; the generator's own ceiling (the sink
at the lb's first interface) is measured the same way, and each datapath's
figure is its nanoseconds per packet beyond the generator's.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from bpflab.bench.datapath import Sink, generate
from bpflab.lab.topology import VIP
from bpflab.libbpf import BpfObject
from bpflab.loaders.objects import BUILD_DIR

FIRST_PORT = 1024
MAX_PACKETS = 64_000  # distinct source ports: every frame of a run a new connection
MIN_PACKETS = 5_000
PROBE_PACKETS = 5_000
RUN_S = 0.5
RUNS = 3


def syn_frame(lab, vip: str = VIP, port: int = 80) -> bytes:
    """A TCP SYN from the client to vip:port, as the lb's first interface gets it."""
    client, lb = lab.endpoint("client", "eth0"), lab.endpoint("lb", "eth0")
    return bytes(Ether(src=client.mac, dst=lb.mac) / IP(src=client.ip, dst=vip, ttl=64)
                 / TCP(sport=FIRST_PORT, dport=port, flags="S", seq=1) / bytes(6))  # 60 bytes


class Generator:
    """gen.bpf.c sending `frame` (a SYN to the measured service by default),
    every frame of a send a new connection."""

    def __init__(self, lab, frame: bytes | None = None):
        self.lab, self.frame = lab, frame or syn_frame(lab)
        self.obj = BpfObject(BUILD_DIR / "bench" / "gen.bpf.o")

    def send(self, packets: int) -> float:
        """`packets` new connections (source ports from FIRST_PORT); the wall
        time the kernel took to send them."""
        return generate(self.lab, self.obj, packets, self.frame, (FIRST_PORT, packets))

    def close(self) -> None:
        self.obj.close()


def rate(gen: Generator, sink: Sink, forget: Callable[[], None]) -> dict:
    """Median Mpps of new connections counted at the sink over RUNS runs."""

    def run(packets: int) -> tuple[float, float]:
        forget()
        return sink.take(lambda: (packets, gen.send(packets)))

    run(MIN_PACKETS)  # warm up: neighbours, code, caches
    probe, _ = run(PROBE_PACKETS)
    packets = max(MIN_PACKETS, min(MAX_PACKETS, int(probe * RUN_S)))
    got = [run(packets) for _ in range(RUNS)]
    rates = [r / 1e6 for r, _ in got]
    median = statistics.median(rates)
    return {"median_mpps": round(median, 4), "runs_mpps": [round(r, 4) for r in rates],
            "packets_per_run": packets, "delivered_pct": round(min(d for _, d in got) * 100, 1)}


def generator_ceiling(lab) -> dict:
    """The generator's own rate: the sink drops at the lb's first interface."""
    gen, sink = Generator(lab), Sink(lab, "lb")
    try:
        return rate(gen, sink, lambda: None)
    finally:
        sink.close()
        gen.close()
