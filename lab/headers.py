"""Where the headers of a frame are: Ethernet (up to two VLAN tags), IPv4,
IPv6 with its chain of extension headers, IP inside IP either way, and the
upper layer a checksum covers. Written from the RFCs (791, 8200, 4213,
2473, 8754), independent of the C under test and of scapy; the checksum
oracle (bpflab.lab.checksums) judges what this finds.

Parsing stops, and says why, where a frame holds something that cannot be
judged (a header cut short, a first fragment, an unknown protocol), and
says so apart when there is simply nothing more (a later fragment, no next
header, ARP): the first is a gap, the second is not.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

ETH_P_IP, ETH_P_IPV6, ETH_P_ARP = 0x0800, 0x86DD, 0x0806
VLAN_TYPES = (0x8100, 0x88A8)
ICMP, IPIP, TCP, UDP, IPV6, ICMPV6, NO_NEXT_HEADER = 1, 4, 6, 17, 41, 58, 59
HOP_BY_HOP, ROUTING, FRAGMENT, AUTH, DEST_OPTS = 0, 43, 44, 51, 60
EXTENSIONS = {HOP_BY_HOP: "hop-by-hop options", ROUTING: "routing", FRAGMENT: "fragment", AUTH: "authentication",
              DEST_OPTS: "destination options"}
UPPER = {TCP: "TCP", UDP: "UDP", ICMP: "ICMP", ICMPV6: "ICMPv6"}  # upper layers with a checksum judged here
CHECKSUM_AT = {TCP: 16, UDP: 6, ICMP: 2, ICMPV6: 2}  # where each keeps its checksum


class Network(NamedTuple):  # a tuple: frames are parsed thousands of times a second in property tests
    """One IP header (with its extension headers) and what follows it."""

    family: int        # 4 or 6
    offset: int        # where the IP header starts in the frame
    upper: int         # where what follows the IP header (and its extension headers) starts
    end: int           # where the packet ends, by its length field
    proto: int         # what follows: an upper layer, or IP again
    src: bytes         # the pseudo-header's addresses: for IPv6 with a routing
    dst: bytes         # header, the final destination (RFC 8200 section 8.1)
    routed: bool = False  # dst is a routing header's final destination, not the IPv6 header's

    @property
    def header_len(self) -> int:
        """IPv4: the header's length (what its checksum covers)."""
        return (self.upper - self.offset) if self.family == 4 else 0


class Parsed(NamedTuple):
    networks: tuple[Network, ...]  # outermost first; more than one: a tunnel
    gap: str = ""       # what is there but cannot be judged, and why
    nothing: str = ""   # why there is nothing more to judge (not a gap)

    @property
    def innermost(self) -> Network | None:
        return self.networks[-1] if self.networks else None

    def segment(self) -> tuple[int, int, int] | None:
        """(protocol, start, end) of the upper layer a checksum covers, when
        parsing reached one whole."""
        inner = self.innermost
        if self.gap or self.nothing or inner is None or inner.proto not in UPPER:
            return None
        return inner.proto, inner.upper, inner.end


def link(frame: bytes) -> tuple[int, int] | None:
    """(ethertype, where the network header starts) after Ethernet and up to
    two VLAN tags; None when the frame ends first."""
    if len(frame) < 14:
        return None
    off, (ethertype,) = 14, struct.unpack_from("!H", frame, 12)
    for _ in range(2):
        if ethertype not in VLAN_TYPES:
            break
        if len(frame) < off + 4:
            return None
        (ethertype,) = struct.unpack_from("!H", frame, off + 2)
        off += 4
    return ethertype, off


def parse(frame: bytes) -> Parsed:
    l2 = link(frame)
    if l2 is None:
        return Parsed((), gap="the Ethernet header (or a VLAN tag) is cut short")
    ethertype, off = l2
    if ethertype == ETH_P_ARP:
        return Parsed((), nothing="ARP carries no checksum")
    if ethertype not in (ETH_P_IP, ETH_P_IPV6):
        return Parsed((), gap=f"ethertype 0x{ethertype:04x} is not parsed here")
    return _network(frame, off, len(frame), ETH_P_IP if ethertype == ETH_P_IP else ETH_P_IPV6, ())


def _network(frame: bytes, off: int, limit: int, ethertype: int, outer: tuple[Network, ...]) -> Parsed:
    found = _ipv4(frame, off, limit) if ethertype == ETH_P_IP else _ipv6(frame, off, limit)
    if isinstance(found, Parsed):
        return Parsed(outer + found.networks, found.gap, found.nothing)
    networks = (*outer, found)
    if found.proto in (IPIP, IPV6):
        return _network(frame, found.upper, found.end, ETH_P_IP if found.proto == IPIP else ETH_P_IPV6, networks)
    if found.proto == NO_NEXT_HEADER:
        return Parsed(networks, nothing="no next header")
    if found.proto not in UPPER:
        return Parsed(networks, gap=f"IP protocol {found.proto} has no checksum judged here")
    if found.end - found.upper < CHECKSUM_AT[found.proto] + 2:
        return Parsed(networks, nothing=f"the packet ends before its {UPPER[found.proto]} checksum field")
    return Parsed(networks)


def _ipv4(frame: bytes, off: int, limit: int) -> Network | Parsed:
    if limit < off + 20:
        return Parsed((), gap="the IPv4 header is cut short")
    if frame[off] >> 4 != 4:
        return Parsed((), gap=f"IP version {frame[off] >> 4} where IPv4 was announced")
    ihl = (frame[off] & 0xF) * 4
    (tot_len,), (frag,) = struct.unpack_from("!H", frame, off + 2), struct.unpack_from("!H", frame, off + 6)
    if ihl < 20 or limit < off + ihl:
        return Parsed((), gap="the IPv4 header length is invalid or beyond the frame")
    header = Network(4, off, off + ihl, off + tot_len, frame[off + 9], frame[off + 12:off + 16], frame[off + 16:off + 20])
    if tot_len < ihl or limit < off + tot_len:
        return Parsed((header,), gap=f"IP total length {tot_len} is beyond the {limit - off} bytes there")
    if frag & 0x1FFF:
        return Parsed((header,), nothing="a later fragment: no upper-layer header in it")
    if frag & 0x2000:
        return Parsed((header,), gap="a first fragment: its upper-layer checksum covers the whole datagram")
    return header


def _ipv6(frame: bytes, off: int, limit: int) -> Network | Parsed:
    if limit < off + 40:
        return Parsed((), gap="the IPv6 header is cut short")
    if frame[off] >> 4 != 6:
        return Parsed((), gap=f"IP version {frame[off] >> 4} where IPv6 was announced")
    (plen,) = struct.unpack_from("!H", frame, off + 4)
    nh, src, dst = frame[off + 6], frame[off + 8:off + 24], frame[off + 24:off + 40]
    end, pos = off + 40 + plen, off + 40
    if plen == 0 and nh == HOP_BY_HOP:
        return Parsed((), gap="a jumbogram (payload length 0 and a hop-by-hop header)")
    if limit < end:
        return Parsed((), gap=f"IPv6 payload length {plen} is beyond the {limit - pos} bytes there")
    routed = False
    while nh in EXTENSIONS:
        if end < pos + 8:
            return Parsed((), gap=f"the IPv6 {EXTENSIONS[nh]} header is cut short")
        size = (frame[pos + 1] + 2) * 4 if nh == AUTH else (frame[pos + 1] + 1) * 8
        if end < pos + size:
            return Parsed((), gap=f"the IPv6 {EXTENSIONS[nh]} header runs past the packet")
        if nh == FRAGMENT:
            (word,) = struct.unpack_from("!H", frame, pos + 2)
            if word >> 3:
                return Parsed((), nothing="a later fragment: no upper-layer header in it")
            if word & 1:
                return Parsed((), gap="a first fragment: its upper-layer checksum covers the whole datagram")
        if nh == ROUTING:
            final = _final_destination(frame, pos, size)
            if isinstance(final, str):
                return Parsed((), gap=final)
            dst, routed = (final, True) if final else (dst, routed)
        nh, pos = frame[pos], pos + size
    return Network(6, off, pos, end, nh, src, dst, routed)


def _final_destination(frame: bytes, pos: int, size: int) -> bytes | str | None:
    """The destination a routing header says the packet ends at (None: the
    header's own; a string: why it cannot be told)."""
    kind, left = frame[pos + 2], frame[pos + 3]
    if left == 0:
        return None
    addresses = (size - 8) // 16
    if kind in (0, 2) and addresses:  # type 0 (deprecated) lists the route, type 2 the home address: the last
        return frame[pos + 8 + 16 * (addresses - 1):pos + 8 + 16 * addresses]
    if kind == 4 and addresses:  # segment routing (RFC 8754): the list runs backwards, segment 0 is the last
        return frame[pos + 8:pos + 24]
    return f"a type {kind} routing header with segments left: its final destination is not read here"
