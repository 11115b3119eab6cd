"""An independent Python model of what the programs must see in a frame,
written from the spec (not from the C): used to compute expected counts for
known frames and for fuzzed ones."""
from __future__ import annotations

import dataclasses
import socket
import struct

ETH_P_IP, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x8100, 0x88A8
VLAN_MAX_DEPTH = 2
# What a non-frags XDP program sees of a frame: one page less the XDP
# headroom (256) and struct skb_shared_info (320).
XDP_LINEAR_MAX = 4096 - 256 - 320


@dataclasses.dataclass(frozen=True)
class IPv4:
    src: str
    dst: str
    proto: int
    tot_len: int
    ihl: int
    frag_offset: int  # in 8-byte units
    more_fragments: bool
    offset: int  # where the IP header starts in the frame

    @property
    def l4_offset(self) -> int:
        return self.offset + self.ihl * 4

    @property
    def has_l4(self) -> bool:
        return self.frag_offset == 0


def ipv4(frame: bytes) -> IPv4 | None:
    """The IPv4 header the programs must accept, or None for anything that
    is not IPv4 or is malformed (they pass those on uncounted)."""
    frame = frame[:XDP_LINEAR_MAX]
    eth = eth_parse(frame)
    if eth is None or eth[0] != ETH_P_IP:
        return None
    off = eth[1]
    if len(frame) < off + 20:
        return None
    ver_ihl, _tos, tot_len, _id, frag, _ttl, proto = struct.unpack_from("!BBHHHBB", frame, off)
    version, ihl = ver_ihl >> 4, ver_ihl & 0xF
    if version != 4 or ihl < 5 or len(frame) < off + ihl * 4:
        return None
    if tot_len < ihl * 4 or len(frame) < off + tot_len:
        return None
    src = socket.inet_ntoa(frame[off + 12 : off + 16])
    dst = socket.inet_ntoa(frame[off + 16 : off + 20])
    return IPv4(src, dst, proto, tot_len, ihl, frag & 0x1FFF, bool(frag & 0x2000), off)


def l4_ports(frame: bytes) -> tuple[int, int] | None:
    """(sport, dport) of a TCP or UDP packet whose header is complete, else None."""
    ip = ipv4(frame)
    if ip is None or not ip.has_l4 or ip.proto not in (6, 17):
        return None
    frame = frame[:XDP_LINEAR_MAX]
    end = ip.offset + ip.tot_len
    l4 = ip.l4_offset
    if ip.proto == 6:
        if l4 + 20 > end:
            return None
        doff = frame[l4 + 12] >> 4
        if doff < 5 or l4 + doff * 4 > end:
            return None
    else:
        if l4 + 8 > end:
            return None
        (ulen,) = struct.unpack_from("!H", frame, l4 + 4)
        if ulen < 8 or (not ip.more_fragments and l4 + ulen > end):
            return None
    return struct.unpack_from("!HH", frame, l4)


def protocol_counts(frames: list[bytes]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for f in frames:
        ip = ipv4(f)
        if ip is not None:
            counts[ip.proto] = counts.get(ip.proto, 0) + 1
    return counts


def connections(frames: list[bytes]) -> dict[tuple[str, str, int], tuple[int, int]]:
    table: dict[tuple[str, str, int], tuple[int, int]] = {}
    for f in frames:
        ip = ipv4(f)
        if ip is not None:
            packets, nbytes = table.get((ip.src, ip.dst, ip.proto), (0, 0))
            table[(ip.src, ip.dst, ip.proto)] = (packets + 1, nbytes + ip.tot_len)
    return table


def eth_parse(frame: bytes) -> tuple[int, int] | None:
    """(EtherType after up to two VLAN tags, its offset), or None when the
    Ethernet/VLAN headers are cut short or nested deeper than parsed."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    off = 14
    for _ in range(VLAN_MAX_DEPTH):
        if ethertype not in (ETH_P_8021Q, ETH_P_8021AD):
            break
        if len(frame) < off + 4:
            return None
        (ethertype,) = struct.unpack_from("!H", frame, off + 2)
        off += 4
    if ethertype in (ETH_P_8021Q, ETH_P_8021AD):
        return None
    return ethertype, off


def dnat_verdict(frame: bytes, services: set[tuple[str, int, int]], egress_mtu: int = 1500) -> str:
    """What xdp_dnat must decide for `frame` when every service's backend
    is routable through an interface of `egress_mtu`: "redirected",
    "not_service", "malformed", "fragment" or "fib_fail" (a packet larger
    than the egress MTU: the FIB answers "fragmentation needed").
    `services` holds (vip, port, proto)."""
    eth = eth_parse(frame)
    if eth is None:
        return "malformed"
    if eth != (ETH_P_IP, 14):
        return "not_service"
    ip = ipv4(frame)
    if ip is None:
        return "malformed"
    if ip.proto not in (6, 17):
        return "not_service"
    if ip.more_fragments or ip.frag_offset:
        return "fragment"
    ports = l4_ports(frame)
    if ports is None:
        return "malformed"
    if (ip.dst, ports[1], ip.proto) not in services:
        return "not_service"
    return "redirected" if ip.tot_len <= egress_mtu else "fib_fail"
