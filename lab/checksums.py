"""The lab's checksum oracle: is every checksum in a frame right?

Written from the RFCs (791, 793, 768, 792, 1071, 8200, 4443), independent of
the C under test and of scapy: the IPv4 header checksum; TCP, UDP and ICMPv6
over their pseudo-header (IPv4's, or IPv6's with both 128-bit addresses, the
final destination when a routing header names one); ICMP over its message;
the inner packet of a tunnel (IP in IP, either way) too. UDP 0 means "no
checksum" over IPv4, and is wrong over IPv6 unless the caller declares the
tunnel port that may send it (RFC 6935/6936). Where the frames are is
bpflab.lab.headers' job; what cannot be judged is said, never guessed (a
frame cut short, a first fragment, a protocol without a checksum here), and
kept apart from what has no checksum at all (ARP, a later fragment).

A frame captured with TP_STATUS_CSUMNOTREADY (the kernel's CHECKSUM_PARTIAL:
TX checksum offload left the L4 checksum for the "hardware" to finish) holds
only the pseudo-header sum in its L4 field; that is what is checked then, so
a rewrite that forgot the pseudo-header is caught even before completion.
"""
from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable

from bpflab.lab.headers import CHECKSUM_AT, ETH_P_IP, ICMP, TCP, UDP, UPPER, link, parse


def ones_sum(data: bytes, start: int = 0) -> int:
    """16-bit one's complement sum of big-endian words (RFC 1071; an odd
    length is padded with a zero byte), folded, added to `start`. Folding
    keeps a number's value modulo 0xFFFF (2**16 is 1 there), so the sum is
    the whole buffer read as one big-endian number, modulo 0xFFFF: 0xFFFF
    for a non-zero multiple, 0 only for all zeros."""
    if len(data) % 2:
        data += b"\0"
    total = int.from_bytes(data, "big") + start
    folded = total % 0xFFFF
    return 0xFFFF if folded == 0 and total else folded


def checksum(data: bytes, start: int = 0) -> int:
    """The Internet checksum of `data`: the complement of its one's complement sum."""
    return ~ones_sum(data, start) & 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Folded one's complement sum of the pseudo-header: IPv4's (4-byte
    addresses, RFC 793) or IPv6's (16-byte ones, a 32-bit length, RFC 8200)."""
    if len(src) == 16:
        return ones_sum(src + dst + struct.pack("!I3xB", length, proto))
    return ones_sum(src + dst + struct.pack("!BBH", 0, proto, length))


def incremental_update(check: int, old_words: tuple[int, ...], new_words: tuple[int, ...]) -> int:
    """RFC 1624 eqn 3, HC' = ~(~HC + ~m + m'), for a field of one or more
    16-bit words changing from `old_words` to `new_words`, as one sum."""
    total = _update_terms(check, old_words, new_words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def needs_second_fold(check: int, old_words: tuple[int, ...], new_words: tuple[int, ...]) -> bool:
    """Whether that sum still carries after folding it once: an update that
    folds only once gets exactly these wrong."""
    total = _update_terms(check, old_words, new_words)
    return (total & 0xFFFF) + (total >> 16) > 0xFFFF


ORDERS = ("be", "le")  # the wire's words as RFC 1624 adds them, or as a little-endian CPU loads them


def swap16(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def in_order(order: str, *values):
    """Words (ints or tuples of them) as an adder of byte order `order` sees them."""
    if order == "be":
        return values if len(values) > 1 else values[0]
    out = tuple(tuple(map(swap16, v)) if isinstance(v, tuple) else swap16(v) for v in values)
    return out if len(out) > 1 else out[0]


def second_fold_checks(old_words: tuple[int, ...], new_words: tuple[int, ...]) -> list[int]:
    """Every HC for which the update needs a second fold. With k the high
    part of the other terms' sum, only ~HC within a few of 0xFFFF - low - k
    (or of 0x1FFFE - low - k) can carry twice: those are checked."""
    rest = sum(~w & 0xFFFF for w in old_words) + sum(new_words)  # the terms besides ~HC
    low, high = rest & 0xFFFF, rest >> 16
    near = {0xFFFF - low - high + d for d in range(-2, 8)} | {0x1FFFE - low - high + d for d in range(-2, 8)}
    return sorted(~a & 0xFFFF for a in near if 0 <= a <= 0xFFFF
                  and needs_second_fold(~a & 0xFFFF, old_words, new_words))


def _update_terms(check: int, old_words: tuple[int, ...], new_words: tuple[int, ...]) -> int:
    return (~check & 0xFFFF) + sum(~w & 0xFFFF for w in old_words) + sum(new_words)


def words(field: bytes) -> tuple[int, ...]:
    """A field as its big-endian 16-bit words (an address: two)."""
    return struct.unpack(f"!{len(field) // 2}H", field)


def same_checksum(a: int, b: int) -> bool:
    """Equal in one's complement arithmetic, where 0x0000 and 0xFFFF are both zero."""
    return a == b or {a, b} == {0, 0xFFFF}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One checksum field judged: `ok`, or what was expected instead."""

    layer: str      # "IPv4", "TCP", "UDP", "ICMP", "ICMPv6"; "inner TCP" inside a tunnel
    ok: bool
    actual: int
    expected: int
    note: str = ""  # "partial (pseudo-header sum)", "no checksum (0)", ...

    def __str__(self) -> str:
        how = f" ({self.note})" if self.note else ""
        if self.ok:
            return f"{self.layer} checksum 0x{self.actual:04x} ok{how}"
        return f"{self.layer} checksum 0x{self.actual:04x}, expected 0x{self.expected:04x}{how}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    findings: tuple[Finding, ...]
    unchecked: str = ""  # what the frame holds that could not be judged, and why
    nothing: str = ""    # why there is nothing (more) to judge: no checksum there (not a gap)

    @property
    def ok(self) -> bool:
        """Judged whole, and right: a frame with something unjudged is never ok."""
        return self.complete and not self.problems

    @property
    def complete(self) -> bool:
        """Everything in the frame that has a checksum was judged."""
        return not self.unchecked

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def __str__(self) -> str:
        parts = [str(f) for f in self.findings] + ([f"not checked: {self.unchecked}"] if self.unchecked else [])
        parts += [f"no checksum: {self.nothing}"] if self.nothing and not self.findings else []
        return "; ".join(parts) or "nothing to check"


def ip_offset(frame: bytes) -> int | None:
    """Where the IPv4 header starts after Ethernet and up to two VLAN tags."""
    l2 = link(frame)
    return l2[1] if l2 is not None and l2[0] == ETH_P_IP else None


def l4_span(frame: bytes) -> tuple[int, int, int, bytes, bytes] | None:
    """(protocol, where the L4 header starts, where the packet ends, source
    and pseudo-header destination address) of a frame whose one IP packet
    holds a whole upper layer and ends the frame (no padding after it, not
    a fragment, no tunnel); None otherwise."""
    parsed = parse(frame)
    segment = parsed.segment()
    if segment is None or len(parsed.networks) != 1 or segment[2] != len(frame):
        return None
    proto, start, end = segment
    if proto == UDP and (end - start < 8 or struct.unpack_from("!H", frame, start + 4)[0] != end - start):
        return None
    net = parsed.innermost
    return proto, start, end, net.src, net.dst


def verify_frame(frame: bytes, *, partial: bool = False, udp6_zero_ports=()) -> Verdict:
    """Judge every checksum of an Ethernet frame. `partial`: the frame was
    captured with CHECKSUM_PARTIAL (the outermost L4 field holds only the
    pseudo-header sum). `udp6_zero_ports`: UDP ports of tunnels that may
    send UDP checksum 0 over IPv6 (RFC 6935); elsewhere it is wrong there."""
    parsed = parse(frame)
    findings = []
    for depth, net in enumerate(parsed.networks):
        if net.family == 4:
            header = frame[net.offset:net.upper]
            stored = struct.unpack_from("!H", header, 10)[0]
            findings.append(Finding(_inner(depth, "IPv4"), ones_sum(header) == 0xFFFF, stored,
                                    checksum(header[:10] + b"\0\0" + header[12:])))
    segment = parsed.segment()
    if segment is None:
        return Verdict(tuple(findings), parsed.gap, parsed.nothing)
    net, depth = parsed.innermost, len(parsed.networks) - 1
    finding, unchecked = _verify_l4(frame, segment, net, partial and depth == 0, udp6_zero_ports)
    if finding and depth:
        finding = dataclasses.replace(finding, layer=_inner(depth, finding.layer))
    findings += [finding] if finding else []
    return Verdict(tuple(findings), unchecked)


def _inner(depth: int, layer: str) -> str:
    return "inner " * depth + layer


def _verify_l4(frame: bytes, segment: tuple[int, int, int], net, partial: bool, udp6_zero_ports
               ) -> tuple[Finding | None, str]:
    proto, start, end = segment
    name, where = UPPER[proto], CHECKSUM_AT[proto]
    l4 = frame[start:end]
    stored = struct.unpack_from("!H", l4, where)[0]
    if proto == UDP:
        # The datagram is what its length field says (the kernel trims the rest).
        ulen = struct.unpack_from("!H", l4, 4)[0] if len(l4) >= 8 else 0
        if not 8 <= ulen <= len(l4):
            return None, f"UDP length {ulen} does not fit the {len(l4)}-byte IP payload"
        l4 = l4[:ulen]
    zeroed = l4[:where] + b"\0\0" + l4[where + 2:]
    if proto == ICMP:
        return Finding(name, ones_sum(l4) == 0xFFFF, stored, checksum(zeroed)), ""
    pseudo = pseudo_header_sum(net.src, net.dst, proto, len(l4))
    if partial and proto in (TCP, UDP):
        # The field holds the folded pseudo-header sum; the rest is summed later.
        return Finding(name, same_checksum(stored, pseudo), stored, pseudo, "partial: pseudo-header sum"), ""
    expected = checksum(zeroed, pseudo)
    if proto == UDP and expected == 0:
        expected = 0xFFFF  # a computed 0 is sent as all ones (RFC 768, RFC 8200)
    if proto == UDP and stored == 0:
        if net.family == 4:
            return Finding(name, True, 0, 0, "no checksum (0)"), ""
        ports = struct.unpack_from("!HH", l4, 0)
        if set(ports) & set(udp6_zero_ports):
            return Finding(name, True, 0, 0, "0 over IPv6: a declared tunnel port (RFC 6935)"), ""
        return Finding(name, False, 0, expected, "0 is not allowed over IPv6 (RFC 8200)"), ""
    return Finding(name, ones_sum(l4, pseudo) == 0xFFFF, stored, expected), ""


def verify_rewrite(before: bytes, after: bytes, *, partial: bool = False, udp6_zero_ports=()) -> Verdict:
    """Judge `after`, what a program made of `before`: every checksum of it
    (verify_frame), and what no single frame shows. A UDP checksum the input
    carried must not become 0, which says "no checksum" (a result that
    computes to 0 is sent as 0xFFFF, RFC 768; dropping the checksum is not a
    NAT's to decide); and a UDP checksum of 0 over IPv6 that the input
    already had is the input's fault, not the program's."""
    verdict = verify_frame(after, partial=partial, udp6_zero_ports=udp6_zero_ports)
    udp_in, udp_out = _outer_udp_checksum(before), _outer_udp_checksum(after)
    if udp_in is None or udp_out is None or udp_out[0] != 0:
        return verdict
    (stored_in, family_in), (_, family_out) = udp_in, udp_out
    if stored_in != 0:
        replaced = Finding("UDP", False, 0, _computed_udp(after), "the input had a checksum: 0 would say it has none")
    elif family_in == family_out == 6:
        replaced = Finding("UDP", True, 0, 0, "0 as it came: not allowed over IPv6, but the input's doing")
    else:
        return verdict
    return Verdict(tuple(f for f in verdict.findings if f.layer != "UDP") + (replaced,), verdict.unchecked,
                   verdict.nothing)


def _outer_udp_checksum(frame: bytes) -> tuple[int, int] | None:
    """(the UDP checksum field, the IP family) of a frame whose only packet is UDP."""
    parsed = parse(frame)
    segment = parsed.segment()
    if segment is None or len(parsed.networks) != 1 or segment[0] != UDP:
        return None
    return struct.unpack_from("!H", frame, segment[1] + 6)[0], parsed.innermost.family


def _computed_udp(frame: bytes) -> int:
    parsed = parse(frame)
    _, start, end = parsed.segment()
    ulen = struct.unpack_from("!H", frame, start + 4)[0]
    datagram = frame[start:start + ulen]
    zeroed = datagram[:6] + b"\0\0" + datagram[8:]
    net = parsed.innermost
    return checksum(zeroed, pseudo_header_sum(net.src, net.dst, UDP, len(datagram))) or 0xFFFF


class BadChecksum(AssertionError):
    pass


def assert_checksums(frames: Iterable[bytes | tuple[bytes, bool]], *, label: str = "frame", udp6_zero_ports=()) -> None:
    """Every checksum of every frame right, or BadChecksum naming each bad
    field with its expected and actual value; a frame with something that
    could not be judged fails too (say what you check). Items are frames or
    (frame, partial) pairs."""
    bad = []
    for i, item in enumerate(frames):
        frame, partial = item if isinstance(item, tuple) else (item, False)
        verdict = verify_frame(frame, partial=partial, udp6_zero_ports=udp6_zero_ports)
        if not verdict.ok:
            bad.append(f"{label} {i}: {verdict}\n    {frame.hex()}")
    if bad:
        raise BadChecksum("bad or unchecked checksums:\n  " + "\n  ".join(bad))
