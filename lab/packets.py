"""Frames as bytes, fast, with exact checksums (lab.checksums' arithmetic),
IPv4 and IPv6 alike.

scapy is the reference for building and parsing packets, and tests compare
against it; but a property test that builds thousands of frames spends
nearly all its time inside scapy. These builders do the few header layouts
the lab needs with struct, and `rewrite` is the model of a NAT: addresses,
ports and MACs replaced, every checksum recomputed from scratch (not
incrementally), a UDP checksum of 0 left 0.
"""
from __future__ import annotations

import socket
import struct

from bpflab.lab.checksums import checksum, ones_sum, pseudo_header_sum
from bpflab.lab.headers import CHECKSUM_AT, ETH_P_IPV6, ICMP, ICMPV6, TCP, UDP, Network, parse

TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20}
ETH_P_IP = 0x0800
ICMP_ECHO_REQUEST, ICMPV6_ECHO_REQUEST = 8, 128


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ip(text: str) -> bytes:
    """An address of either family, as the wire has it."""
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def ether(dst: str, src: str, ethertype: int = ETH_P_IP, vlans: tuple[int, ...] = ()) -> bytes:
    head = mac(dst) + mac(src)
    for vid in vlans:
        head += struct.pack("!HH", 0x8100, vid)
    return head + struct.pack("!H", ethertype)


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, options: bytes = b"", ident: int = 0, tos: int = 0,
         ttl: int = 64, flags: int = 0, frag: int = 0) -> bytes:
    """An IPv4 packet; `options` is padded to a multiple of 4 bytes."""
    options += b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    if ihl > 15:
        raise ValueError(f"{len(options)} bytes of IP options do not fit (at most 40)")
    header = struct.pack("!BBHHHBB", 0x40 | ihl, tos, 4 * ihl + len(payload), ident, (flags << 13) | frag, ttl,
                         proto) + b"\0\0" + ip(src) + ip(dst) + options
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def extension(kind: int, body: bytes = b"") -> tuple[int, bytes]:
    """An IPv6 extension header of type `kind` (hop-by-hop 0, destination
    options 60: `body` padded with PadN to a multiple of 8; routing 43 and
    fragment 44: `body` as given, from their third byte on)."""
    if kind in (0, 60):
        pad = -(len(body) + 2) % 8
        body += bytes([1, pad - 2]) + bytes(pad - 2) if pad >= 2 else bytes(pad)  # PadN (or Pad1s)
    return kind, body


def ipv6(src: str, dst: str, proto: int, payload: bytes, *, extensions: tuple[tuple[int, bytes], ...] = (),
         hop_limit: int = 64, flow: int = 0) -> bytes:
    """An IPv6 packet; `extensions` (extension()) come before `payload`, chained."""
    chain = b""
    kinds = [kind for kind, _ in extensions] + [proto]
    for (kind, body), next_header in zip(extensions, kinds[1:], strict=True):
        length = (len(body) + 2) // 8 - 1 if kind != 44 else 0
        chain += bytes([next_header, length]) + body
    first = kinds[0]
    return struct.pack("!IHBB", 0x60000000 | flow, len(chain) + len(payload), first, hop_limit) + ip(src) + ip(dst) \
        + chain + payload


def ip_packet(src: str, dst: str, proto: int, payload: bytes, **options) -> bytes:
    """An IPv4 or IPv6 packet, as the addresses say."""
    return (ipv6 if ":" in src else ipv4)(src, dst, proto, payload, **options)


def _l4_checksum(src: str, dst: str, proto: int, segment: bytes) -> int:
    return checksum(segment, pseudo_header_sum(ip(src), ip(dst), proto, len(segment)))


def tcp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"", *, seq: int = 0, ack: int = 0,
        flags: str = "S", window: int = 65535, options: bytes = b"") -> bytes:
    """A TCP segment (header, options padded to 4 bytes, payload) with its
    checksum; `dst` is the pseudo-header's (a routing header's final one)."""
    options += b"\0" * (-len(options) % 4)
    doff = 5 + len(options) // 4
    bits = sum(TCP_FLAGS[f] for f in flags)
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, bits, window, 0, 0) + options + payload
    check = _l4_checksum(src, dst, TCP, segment)
    return segment[:16] + struct.pack("!H", check) + segment[18:]


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"", *, no_checksum: bool = False) -> bytes:
    """A UDP datagram with its checksum (a computed 0 sent as 0xFFFF), or 0."""
    datagram = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if no_checksum:
        return datagram
    check = _l4_checksum(src, dst, UDP, datagram) or 0xFFFF
    return datagram[:6] + struct.pack("!H", check) + datagram[8:]


def icmp_echo(ident: int = 0, seq: int = 0, payload: bytes = b"") -> bytes:
    message = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq) + payload
    return message[:2] + struct.pack("!H", checksum(message)) + message[4:]


def icmp6_echo(src: str, dst: str, ident: int = 0, seq: int = 0, payload: bytes = b"") -> bytes:
    """An ICMPv6 echo request, summed over the IPv6 pseudo-header (RFC 4443)."""
    message = struct.pack("!BBHHH", ICMPV6_ECHO_REQUEST, 0, 0, ident, seq) + payload
    return message[:2] + struct.pack("!H", _l4_checksum(src, dst, ICMPV6, message)) + message[4:]


def _segment(frame: bytes) -> tuple[Network, int]:
    """The frame's (only, outermost) IP header and its upper layer's protocol."""
    parsed = parse(frame)
    net = parsed.networks[0]
    return net, net.proto


def l4_offset(frame: bytes) -> int:
    """Where the upper layer starts: after the IPv4 header, or IPv6's and its extension headers."""
    return _segment(frame)[0].upper


def l4_checksum_at(frame: bytes) -> int:
    """Where the TCP/UDP/ICMP/ICMPv6 checksum field of a frame is."""
    net, proto = _segment(frame)
    return net.upper + CHECKSUM_AT[proto]


def payload_offset(frame: bytes) -> int:
    """Where the L4 payload starts (after TCP options, the UDP or ICMP echo header)."""
    net, proto = _segment(frame)
    return net.upper + ((frame[net.upper + 12] >> 4) * 4 if proto == TCP else 8)


def _recompute(frame: bytearray, parsed=None) -> None:
    """Recompute the IPv4 header and TCP/UDP/ICMP/ICMPv6 checksums of
    `frame` in place (a UDP checksum of 0 stays 0, as it came). `parsed`:
    the frame's layout, parsed before its addresses changed."""
    parsed = parsed or parse(bytes(frame))
    net = parsed.networks[0]
    at = (12, 16) if net.family == 4 else (8, 24)
    size = 4 if net.family == 4 else 16
    src = bytes(frame[net.offset + at[0]:net.offset + at[0] + size])
    header_dst = frame[net.offset + at[1]:net.offset + at[1] + size]
    # The pseudo-header's destination is the header's unless a routing header names the final one.
    dst = net.dst if net.routed else bytes(header_dst)
    if net.family == 4:
        frame[net.offset + 10:net.offset + 12] = b"\0\0"
        frame[net.offset + 10:net.offset + 12] = struct.pack("!H", checksum(bytes(frame[net.offset:net.upper])))
    segment = parsed.segment()
    if segment is None:
        return  # a fragment, or nothing with a checksum
    proto, start, end = segment
    where = start + CHECKSUM_AT[proto]
    if proto == UDP:
        if frame[where:where + 2] == b"\0\0":
            return
        end = start + struct.unpack_from("!H", frame, start + 4)[0]
    frame[where:where + 2] = b"\0\0"
    pseudo = 0 if proto == ICMP else pseudo_header_sum(src, dst, proto, end - start)
    check = checksum(bytes(frame[start:end]), pseudo)
    if proto == UDP and check == 0:
        check = 0xFFFF
    frame[where:where + 2] = struct.pack("!H", check)


def rewrite(frame: bytes, *, src: str | None = None, dst: str | None = None, sport: int | None = None,
            dport: int | None = None, smac: str | None = None, dmac: str | None = None) -> bytes:
    """`frame` with the given fields replaced and its checksums recomputed
    from scratch: what a correct NAT of a frame with valid checksums sends."""
    out = bytearray(frame)
    parsed = parse(frame)
    net = parsed.networks[0]
    at = (12, 16) if net.family == 4 else (8, 24)
    if dmac is not None:
        out[0:6] = mac(dmac)
    if smac is not None:
        out[6:12] = mac(smac)
    for address, offset in ((src, at[0]), (dst, at[1])):
        if address is not None:
            raw = ip(address)
            out[net.offset + offset:net.offset + offset + len(raw)] = raw
    if sport is not None:
        out[net.upper:net.upper + 2] = struct.pack("!H", sport)
    if dport is not None:
        out[net.upper + 2:net.upper + 4] = struct.pack("!H", dport)
    _recompute(out, parsed)
    return bytes(out)


def steer(frame: bytes, at: int, field: int, target: int, *, start: int, end: int, pseudo: int = 0) -> bytes:
    """`frame` with the 16-bit word at offset `at` (a free word inside the
    range [start, end) a checksum at offset `field` covers, plus `pseudo`)
    changed so that the valid checksum becomes `target`. The checksum field
    is rewritten with it, so the frame stays valid."""
    if (at - start) % 2 or not start <= at < end - 1:
        raise ValueError("the steering word must be a whole, aligned word inside the checksummed range")
    out = bytearray(frame)
    out[field:field + 2] = b"\0\0"
    base = ones_sum(bytes(out[start:end]), pseudo)
    word = struct.unpack_from("!H", out, at)[0]
    # one's complement: sum' = sum - word + new_word must equal ~target
    want = ~target & 0xFFFF
    new_word = ones_sum(struct.pack("!HHH", want, ~base & 0xFFFF, word))
    for candidate in (new_word, new_word ^ 0xFFFF if new_word in (0, 0xFFFF) else new_word):
        out[at:at + 2] = struct.pack("!H", candidate)
        if checksum(bytes(out[start:end]), pseudo) == target:
            out[field:field + 2] = struct.pack("!H", target)
            return bytes(out)
    raise ValueError(f"checksum 0x{target:04x} cannot be reached by changing one word")


def steer_l4_checksum(frame: bytes, target: int) -> bytes:
    """The TCP/UDP/ICMP(v6) frame with the first two payload bytes chosen so
    that its (valid) L4 checksum is `target`."""
    parsed = parse(frame)
    proto, start, end = parsed.segment()
    net = parsed.networks[0]
    pseudo = 0 if proto == ICMP else pseudo_header_sum(net.src, net.dst, proto, end - start)
    return steer(frame, payload_offset(frame), start + CHECKSUM_AT[proto], target, start=start, end=end,
                 pseudo=pseudo)


def steer_ip_checksum(frame: bytes, target: int) -> bytes:
    """The IPv4 frame with its IP identification chosen so that its (valid)
    header checksum is `target`."""
    net = parse(frame).networks[0]
    return steer(frame, net.offset + 4, net.offset + 10, target, start=net.offset, end=net.upper)


__all__ = ["ETH_P_IP", "ETH_P_IPV6", "ICMP", "ICMPV6", "TCP", "UDP", "ether", "extension", "icmp6_echo", "icmp_echo",
           "ip", "ip_packet", "ipv4", "ipv6", "mac", "rewrite", "steer_ip_checksum", "steer_l4_checksum", "tcp", "udp"]
