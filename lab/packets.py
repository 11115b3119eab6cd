"""Frames as bytes, fast, with exact checksums (lab.checksums' arithmetic).

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

from bpflab.lab.checksums import ICMP, TCP, UDP, checksum, ip_offset, ones_sum, pseudo_header_sum

TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20}


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ip(text: str) -> bytes:
    return socket.inet_aton(text)


def ether(dst: str, src: str, ethertype: int = 0x0800, vlans: tuple[int, ...] = ()) -> bytes:
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
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, 4 * ihl + len(payload), ident, (flags << 13) | frag,
                         ttl, proto, 0, ip(src), ip(dst)) + options
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def _l4_checksum(src: str, dst: str, proto: int, segment: bytes) -> int:
    return checksum(segment, pseudo_header_sum(ip(src), ip(dst), proto, len(segment)))


def tcp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"", *, seq: int = 0, ack: int = 0,
        flags: str = "S", window: int = 65535, options: bytes = b"") -> bytes:
    """A TCP segment (header, options padded to 4 bytes, payload) with its checksum."""
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
    message = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    return message[:2] + struct.pack("!H", checksum(message)) + message[4:]


def l4_offset(frame: bytes) -> int:
    off = ip_offset(frame)
    return off + (frame[off] & 0xF) * 4


CHECKSUM_AT = {TCP: 16, UDP: 6, ICMP: 2}  # where each L4 header keeps its checksum


def l4_checksum_at(frame: bytes) -> int:
    """Where the TCP/UDP/ICMP checksum field of a frame is."""
    off = ip_offset(frame)
    return l4_offset(frame) + CHECKSUM_AT[frame[off + 9]]


def payload_offset(frame: bytes) -> int:
    """Where the L4 payload starts (after TCP options, the UDP or ICMP echo header)."""
    off, l4 = ip_offset(frame), l4_offset(frame)
    return l4 + ((frame[l4 + 12] >> 4) * 4 if frame[off + 9] == TCP else 8)


def _recompute(frame: bytearray, off: int) -> None:
    """Recompute the IPv4 header and TCP/UDP checksums of `frame` in place
    (a UDP checksum of 0 stays 0: no checksum)."""
    ihl = (frame[off] & 0xF) * 4
    frame[off + 10:off + 12] = b"\0\0"
    frame[off + 10:off + 12] = struct.pack("!H", checksum(bytes(frame[off:off + ihl])))
    proto, tot_len = frame[off + 9], struct.unpack_from("!H", frame, off + 2)[0]
    l4, end = off + ihl, off + tot_len
    where = CHECKSUM_AT.get(proto)
    if where is None or struct.unpack_from("!H", frame, off + 6)[0] & 0x3FFF:
        return
    if proto == ICMP:  # over the message alone, no pseudo-header
        frame[l4 + 2:l4 + 4] = b"\0\0"
        frame[l4 + 2:l4 + 4] = struct.pack("!H", checksum(bytes(frame[l4:end])))
        return
    if proto == UDP:
        if struct.unpack_from("!H", frame, l4 + 6)[0] == 0:
            return
        end = l4 + struct.unpack_from("!H", frame, l4 + 4)[0]
    frame[l4 + where:l4 + where + 2] = b"\0\0"
    segment = bytes(frame[l4:end])
    check = checksum(segment, pseudo_header_sum(bytes(frame[off + 12:off + 16]), bytes(frame[off + 16:off + 20]), proto,
                                                len(segment)))
    if proto == UDP and check == 0:
        check = 0xFFFF
    frame[l4 + where:l4 + where + 2] = struct.pack("!H", check)


def rewrite(frame: bytes, *, src: str | None = None, dst: str | None = None, sport: int | None = None,
            dport: int | None = None, smac: str | None = None, dmac: str | None = None) -> bytes:
    """`frame` with the given fields replaced and its checksums recomputed
    from scratch: what a correct NAT of a frame with valid checksums sends."""
    out = bytearray(frame)
    off = ip_offset(frame)
    l4 = off + (frame[off] & 0xF) * 4
    if dmac is not None:
        out[0:6] = mac(dmac)
    if smac is not None:
        out[6:12] = mac(smac)
    if src is not None:
        out[off + 12:off + 16] = ip(src)
    if dst is not None:
        out[off + 16:off + 20] = ip(dst)
    if sport is not None:
        out[l4:l4 + 2] = struct.pack("!H", sport)
    if dport is not None:
        out[l4 + 2:l4 + 4] = struct.pack("!H", dport)
    _recompute(out, off)
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
    """The TCP/UDP/ICMP frame with the first two payload bytes chosen so
    that its (valid) L4 checksum is `target`."""
    off, l4 = ip_offset(frame), l4_offset(frame)
    proto, tot_len = frame[off + 9], struct.unpack_from("!H", frame, off + 2)[0]
    pseudo = 0 if proto == ICMP else pseudo_header_sum(frame[off + 12:off + 16], frame[off + 16:off + 20], proto,
                                                        tot_len - (l4 - off))
    return steer(frame, payload_offset(frame), l4_checksum_at(frame), target, start=l4, end=off + tot_len,
                 pseudo=pseudo)


def steer_ip_checksum(frame: bytes, target: int) -> bytes:
    """The frame with its IP identification chosen so that its (valid) IPv4
    header checksum is `target`."""
    off = ip_offset(frame)
    return steer(frame, off + 4, off + 10, target, start=off, end=off + (frame[off] & 0xF) * 4)


__all__ = ["ICMP", "TCP", "UDP", "ether", "icmp_echo", "ip", "ipv4", "mac", "rewrite", "steer_ip_checksum",
           "steer_l4_checksum", "tcp", "udp"]
