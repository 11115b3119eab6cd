"""Frames for tests, built with scapy: a known mix of every kind the
programs must handle, each named so a failure says which."""
from __future__ import annotations

import struct

from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from bpflab.lab.topology import pair

# Frames from left to right across the pair lab, addressed from its topology.
LEFT, RIGHT = pair().endpoint("left", "eth0"), pair().endpoint("right", "eth0")
SRC_MAC, DST_MAC = LEFT.mac, RIGHT.mac
A, B, C = LEFT.ip, RIGHT.ip, "192.0.2.7"  # C: an address behind right


def eth() -> Ether:
    return Ether(src=SRC_MAC, dst=DST_MAC)


def with_ip_field(frame: bytes, offset: int, fmt: str, value: int, ip_at: int = 14) -> bytes:
    """`frame` with one IP header field overwritten and the header checksum
    made right again (over the header length the field now claims, where
    that fits in the frame, else the basic 20 bytes): the frame lies in that
    one field only."""
    from bpflab.lab.checksums import checksum

    out = bytearray(frame)
    struct.pack_into(fmt, out, ip_at + offset, value)
    ihl = (out[ip_at] & 0xF) * 4
    length = ihl if 20 <= ihl <= len(out) - ip_at else 20
    struct.pack_into("!H", out, ip_at + 10, 0)
    struct.pack_into("!H", out, ip_at + 10, checksum(bytes(out[ip_at:ip_at + length])))
    return bytes(out)


def ip_ends_early(frame: bytes, tot_len: int, ip_at: int = 14) -> bytes:
    """`frame` with the IP total length cut to `tot_len` (header checksum
    recomputed) and everything after it left in place as Ethernet padding,
    at least up to the 60-byte minimum frame: the L4 header a program must
    not read when tot_len says the packet ended before it."""
    from bpflab.lab.checksums import checksum

    out = bytearray(frame.ljust(60, b"\0"))
    struct.pack_into("!H", out, ip_at + 2, tot_len)
    ihl = (out[ip_at] & 0xF) * 4
    struct.pack_into("!H", out, ip_at + 10, 0)
    struct.pack_into("!H", out, ip_at + 10, checksum(bytes(out[ip_at:ip_at + ihl])))
    return bytes(out)


def known_mix() -> list[tuple[str, bytes]]:
    tcp_syn = eth() / IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="S")
    udp = eth() / IP(src=A, dst=B) / UDP(sport=5000, dport=53) / b"query"
    first, second = (eth() / f for f in fragment(IP(src=A, dst=C, id=7) / UDP(sport=1, dport=2) / bytes(1400), 800))
    return [
        ("icmp", bytes(eth() / IP(src=A, dst=B) / ICMP() / b"ping")),
        ("tcp syn", bytes(tcp_syn)),
        ("tcp data", bytes(eth() / IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="PA") / (b"x" * 100))),
        ("tcp reply", bytes(eth() / IP(src=B, dst=A) / TCP(sport=80, dport=40000, flags="SA"))),
        ("udp", bytes(udp)),
        ("gre", bytes(eth() / IP(src=A, dst=C) / GRE() / IP(src="1.1.1.1", dst="2.2.2.2") / UDP())),
        ("ipv6", bytes(eth() / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=2))),
        ("arp", bytes(eth() / ARP(psrc=A, pdst=B))),
        ("vlan udp", bytes(eth() / Dot1Q(vlan=10) / IP(src=A, dst=B) / UDP(sport=5000, dport=53) / b"tagged")),
        ("qinq icmp", bytes(eth() / Dot1AD(vlan=20) / Dot1Q(vlan=30) / IP(src=C, dst=A) / ICMP())),
        ("ip options udp", bytes(eth() / IP(src=A, dst=C, options=[IPOption_RR(routers=["0.0.0.0"] * 2)])
                                 / UDP(sport=7, dport=7) / b"opts")),
        ("first fragment", bytes(first)),
        ("later fragment", bytes(second)),
        ("padded small udp", bytes(eth() / IP(src=C, dst=B) / UDP(sport=9, dport=9)).ljust(60, b"\0")),
        ("truncated in ip header", bytes(tcp_syn)[:14 + 12]),
        ("truncated in ethernet", bytes(tcp_syn)[:10]),
        ("ihl 4", with_ip_field(bytes(udp), 0, "!B", 0x44)),
        ("ihl 15 beyond frame", with_ip_field(bytes(eth() / IP(src=A, dst=B) / ICMP()), 0, "!B", 0x4F)),
        ("tot_len beyond frame", with_ip_field(bytes(udp), 2, "!H", 1500)),
        ("tot_len below header", with_ip_field(bytes(udp), 2, "!H", 19)),
        ("version 6 in ipv4 ethertype", with_ip_field(bytes(udp), 0, "!B", 0x65)),
        # Short IP packets in minimum-size frames: tot_len ends the packet
        # before (or inside) its L4 header, and the Ethernet padding holds
        # bytes that look exactly like a TCP/UDP header. They are not one.
        ("tcp header only in the padding", ip_ends_early(bytes(eth() / IP(src=A, dst=B)
                                                               / TCP(sport=40001, dport=80, flags="S")), 20)),
        ("tcp header half in the padding", ip_ends_early(bytes(eth() / IP(src=A, dst=B)
                                                               / TCP(sport=40002, dport=80, flags="S")), 30)),
        ("udp header only in the padding", ip_ends_early(bytes(eth() / IP(src=A, dst=B)
                                                               / UDP(sport=5001, dport=53)), 20)),
        ("tcp options in the padding", ip_ends_early(bytes(eth() / IP(src=A, dst=B)
                                                           / TCP(sport=40003, dport=80, options=[("MSS", 1460)])), 40)),
        ("first fragment's udp header in the padding", ip_ends_early(bytes(eth() / IP(src=A, dst=C, flags="MF")
                                                                           / UDP(sport=5002, dport=53)), 20)),
    ]
