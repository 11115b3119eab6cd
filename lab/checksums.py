"""The lab's checksum oracle: is every checksum in a frame right?

Written from the RFCs (791, 793, 768, 792, 1071), independent of the C under
test and of scapy: IPv4 header checksum, TCP and UDP over the pseudo-header
(UDP 0 means "no checksum"), ICMP over its message. What cannot be judged is
said, never guessed: a frame cut short, a fragment (its L4 checksum covers
the whole datagram), a protocol without a checksum here.

A frame captured with TP_STATUS_CSUMNOTREADY (the kernel's CHECKSUM_PARTIAL:
TX checksum offload left the L4 checksum for the "hardware" to finish) holds
only the pseudo-header sum in its L4 field; that is what is checked then, so
a rewrite that forgot the pseudo-header is caught even before completion.
"""
from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable

ETH_P_IP, VLAN_TYPES = 0x0800, (0x8100, 0x88A8)
TCP, UDP, ICMP = 6, 17, 1
PROTO_NAMES = {TCP: "TCP", UDP: "UDP", ICMP: "ICMP"}


def ones_sum(data: bytes, start: int = 0) -> int:
    """16-bit one's complement sum of big-endian words (RFC 1071; an odd
    length is padded with a zero byte), folded, added to `start`."""
    if len(data) % 2:
        data += b"\0"
    total = start + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes, start: int = 0) -> int:
    """The Internet checksum of `data`: the complement of its one's complement sum."""
    return ~ones_sum(data, start) & 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Folded one's complement sum of the IPv4 pseudo-header."""
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

    layer: str      # "IPv4", "TCP", "UDP", "ICMP"
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
    unchecked: str = ""  # why (part of) the frame could not be judged

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def __str__(self) -> str:
        parts = [str(f) for f in self.findings] + ([f"not checked: {self.unchecked}"] if self.unchecked else [])
        return "; ".join(parts) or "nothing to check"


def ip_offset(frame: bytes) -> int | None:
    """Where the IPv4 header starts after Ethernet and up to two VLAN tags."""
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
    return off if ethertype == ETH_P_IP else None


def l4_span(frame: bytes) -> tuple[int, int, int, bytes, bytes] | None:
    """(protocol, where the L4 header starts, where the packet ends, source
    and destination address) of a frame whose L4 segment is whole and ends
    the frame (no padding after it, not a fragment); None otherwise."""
    off = ip_offset(frame)
    if off is None or len(frame) < off + 20 or frame[off] >> 4 != 4:
        return None
    ihl = (frame[off] & 0xF) * 4
    (tot_len,), (frag,) = struct.unpack_from("!H", frame, off + 2), struct.unpack_from("!H", frame, off + 6)
    if ihl < 20 or frag & 0x3FFF or off + tot_len != len(frame) or tot_len < ihl:
        return None
    if frame[off + 9] == UDP and (tot_len - ihl < 8 or struct.unpack_from("!H", frame, off + ihl + 4)[0] != tot_len - ihl):
        return None
    return frame[off + 9], off + ihl, off + tot_len, frame[off + 12:off + 16], frame[off + 16:off + 20]


def verify_frame(frame: bytes, *, partial: bool = False) -> Verdict:
    """Judge every checksum of an Ethernet frame carrying IPv4. `partial`:
    the frame was captured with CHECKSUM_PARTIAL (see the module's doc)."""
    off = ip_offset(frame)
    if off is None:
        return Verdict((), "not IPv4")
    if len(frame) < off + 20 or frame[off] >> 4 != 4:
        return Verdict((), "IPv4 header cut short or not version 4")
    ihl = (frame[off] & 0xF) * 4
    tot_len, frag, proto = struct.unpack_from("!H", frame, off + 2)[0], struct.unpack_from("!H", frame, off + 6)[0], \
        frame[off + 9]
    if ihl < 20 or len(frame) < off + ihl:
        return Verdict((), "IPv4 header length invalid or beyond the frame")
    header = frame[off:off + ihl]
    stored = struct.unpack_from("!H", header, 10)[0]
    expected = checksum(header[:10] + b"\0\0" + header[12:])
    findings = [Finding("IPv4", ones_sum(header) == 0xFFFF, stored, expected)]
    if frag & 0x3FFF:
        return Verdict(tuple(findings), "a fragment: its L4 checksum covers the whole datagram")
    if proto not in PROTO_NAMES:
        return Verdict(tuple(findings), f"IP protocol {proto} has no checksum checked here")
    if tot_len < ihl or len(frame) < off + tot_len:
        return Verdict(tuple(findings), f"IP total length {tot_len} beyond the frame's {len(frame) - off} bytes")
    l4 = frame[off + ihl:off + tot_len]
    finding, unchecked = _verify_l4(PROTO_NAMES[proto], l4, header[12:16], header[16:20], partial)
    return Verdict(tuple(findings) + ((finding,) if finding else ()), unchecked)


def _verify_l4(name: str, l4: bytes, src: bytes, dst: bytes, partial: bool) -> tuple[Finding | None, str]:
    where = {"TCP": 16, "UDP": 6, "ICMP": 2}[name]
    if len(l4) < where + 2:
        return None, f"{name} header cut short at {len(l4)} bytes by the IP total length"
    stored = struct.unpack_from("!H", l4, where)[0]
    if name == "UDP" and stored == 0:
        return Finding(name, True, 0, 0, "no checksum (0)"), ""
    zeroed = l4[:where] + b"\0\0" + l4[where + 2:]
    if name == "ICMP":
        return Finding(name, ones_sum(l4) == 0xFFFF, stored, checksum(zeroed)), ""
    if name == "UDP":
        # The datagram is what its length field says (the kernel trims the rest).
        ulen = struct.unpack_from("!H", l4, 4)[0]
        if not 8 <= ulen <= len(l4):
            return None, f"UDP length {ulen} does not fit the {len(l4)}-byte IP payload"
        l4, zeroed = l4[:ulen], zeroed[:ulen]
    pseudo = pseudo_header_sum(src, dst, TCP if name == "TCP" else UDP, len(l4))
    if partial:
        # The field holds the folded pseudo-header sum; the rest is summed later.
        return Finding(name, same_checksum(stored, pseudo), stored, pseudo, "partial: pseudo-header sum"), ""
    expected = checksum(zeroed, pseudo)
    if name == "UDP" and expected == 0:
        expected = 0xFFFF  # a computed 0 is sent as all ones (RFC 768)
    return Finding(name, ones_sum(l4, pseudo) == 0xFFFF, stored, expected), ""


def verify_rewrite(before: bytes, after: bytes, *, partial: bool = False) -> Verdict:
    """Judge `after`, what a program made of `before`: every checksum of it
    (verify_frame), and one thing no single frame shows: a UDP checksum the
    input carried must not become 0, which says "no checksum" (a result that
    computes to 0 is sent as 0xFFFF, RFC 768; dropping the checksum is not a
    NAT's to decide)."""
    verdict = verify_frame(after, partial=partial)
    dropped = _udp_checksum_dropped(before, after)
    if dropped is None:
        return verdict
    findings = tuple(f for f in verdict.findings if f.layer != "UDP") + (dropped,)
    return Verdict(findings, verdict.unchecked)


def _udp_checksum_dropped(before: bytes, after: bytes) -> Finding | None:
    spans = l4_span(before), l4_span(after)
    if None in spans or spans[0][0] != UDP or spans[1][0] != UDP:
        return None
    (_, start, _, _, _), (_, out_start, out_end, src, dst) = spans
    if before[start + 6:start + 8] == b"\0\0" or after[out_start + 6:out_start + 8] != b"\0\0":
        return None
    datagram = after[out_start:out_end]
    expected = checksum(datagram, pseudo_header_sum(src, dst, UDP, len(datagram))) or 0xFFFF
    return Finding("UDP", False, 0, expected, "the input had a checksum: 0 would say it has none")


class BadChecksum(AssertionError):
    pass


def assert_checksums(frames: Iterable[bytes | tuple[bytes, bool]], *, label: str = "frame") -> None:
    """Every checksum of every frame right, or BadChecksum naming each bad
    field with its expected and actual value. Items are frames or
    (frame, partial) pairs."""
    bad = []
    for i, item in enumerate(frames):
        frame, partial = item if isinstance(item, tuple) else (item, False)
        verdict = verify_frame(frame, partial=partial)
        if not verdict.ok:
            bad.append(f"{label} {i}: {verdict}\n    {frame.hex()}")
    if bad:
        raise BadChecksum("bad checksums:\n  " + "\n  ".join(bad))
