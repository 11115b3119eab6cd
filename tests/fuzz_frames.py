"""Hypothesis strategies for frames that try to break the parsers."""
from __future__ import annotations

import struct

from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q

from bpflab.host import kernel
from tests.frame_mix import A, B, eth
from tests.model import XDP_LINEAR_MAX

VIP = "10.96.0.10"
ADDRS = st.sampled_from([A, B, VIP, "10.244.1.5", "0.0.0.0", "255.255.255.255"])
PORTS = st.sampled_from([80, 53, 8080, 0, 65535, 1234])


@st.composite
def ipv4_frames(draw) -> bytes:
    proto = draw(st.sampled_from(["tcp", "udp", "icmp", "gre", "raw"]))
    ip = IP(src=draw(ADDRS), dst=draw(ADDRS), id=draw(st.integers(0, 65535)),
            options=[IPOption_NOP()] * draw(st.integers(0, 40)))
    if draw(st.booleans()):
        ip.flags = draw(st.sampled_from([0, 1, 2]))  # MF / DF
        ip.frag = draw(st.sampled_from([0, 0, 1, 185, 8191]))
    l4 = {"tcp": lambda: TCP(sport=draw(PORTS), dport=draw(PORTS), dataofs=draw(st.sampled_from([None, 0, 4, 5, 15]))),
          "udp": lambda: UDP(sport=draw(PORTS), dport=draw(PORTS), len=draw(st.sampled_from([None, 0, 7, 8, 9, 4000]))),
          "icmp": lambda: ICMP(), "gre": lambda: b"\0\0\x08\0", "raw": lambda: b""}[proto]()
    if proto == "gre":
        ip.proto = 47
    elif proto == "raw":
        ip.proto = draw(st.integers(0, 255))
    payload = draw(st.binary(max_size=300))
    tags = draw(st.sampled_from([[], [Dot1Q(vlan=3)], [Dot1AD(vlan=4), Dot1Q(vlan=5)],
                                 [Dot1Q(vlan=1), Dot1Q(vlan=2), Dot1Q(vlan=3)]]))
    frame = eth()
    for tag in tags:
        frame = frame / tag
    frame = bytes(frame / ip / l4 / payload)
    ip_at = 14 + 4 * len(tags)
    # Headers that lie: ihl and tot_len overwritten.
    if draw(st.booleans()):
        frame = bytearray(frame)
        if draw(st.booleans()):
            frame[ip_at] = 0x40 | draw(st.integers(0, 15))
        if draw(st.booleans()):
            struct.pack_into("!H", frame, ip_at + 2, draw(st.integers(0, 65535)))
        frame = bytes(frame)
    if draw(st.booleans()):  # truncated anywhere
        frame = frame[: draw(st.integers(14, len(frame)))]
    return frame


def jumbo() -> st.SearchStrategy[bytes]:
    """Frames past the MTU; past a page only where XDP test-run takes frags
    (5.18+: older kernels refuse them with EINVAL, and no NIC hands XDP one)."""
    largest = 9000 if kernel.has("xdp_test_run_frags") else XDP_LINEAR_MAX - 42 - 1
    return st.integers(1500, largest).map(
        lambda n: bytes(eth() / IP(src=A, dst=VIP) / UDP(sport=1, dport=53) / bytes(n)))


OTHER = st.one_of(
    st.just(bytes(eth() / IPv6() / TCP(dport=80))),
    st.just(bytes(eth() / ARP(pdst=VIP))),
    st.binary(min_size=14, max_size=200),  # random bytes
    st.binary(min_size=14, max_size=200).map(lambda b: b[:12] + b"\x08\x00" + b[14:]),  # random "IPv4"
    st.just(bytes(eth() / IP(src=A, dst=B))[:14]),  # Ethernet header only
    jumbo(),
)

FRAMES = st.one_of(ipv4_frames(), ipv4_frames(), OTHER)
