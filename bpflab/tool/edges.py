"""Frames for any program, aimed at the edges of one's complement checksums.

Input edges are set directly: a TCP checksum of 0x0000 or 0xFFFF, UDP 0 ("no
checksum"), a UDP checksum computing to 0 (sent 0xFFFF), an IPv4 header
checksum of 0, odd payload lengths, every IP header length, ICMP, VLAN tags,
fragments, short packets in padded 60-byte frames.

Result edges depend on what the program rewrites, which bpflab does not know
in advance: a probe frame is run through the program first, the words it
changed are read off its output, and a free word of the input (the IP
identification, the first payload bytes) is steered so that a *correct*
rewrite lands on the edge: a checksum of 0x0000 after the rewrite, or an
RFC 1624 update whose sum carries twice (in big-endian word order, or as a
little-endian CPU adds the wire's bytes). Each case says which edge it aims
at and whether the aim could be taken.
"""
from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

from hypothesis import strategies as st

from bpflab.lab import packets as P
from bpflab.lab.checksums import ICMP, ORDERS, TCP, UDP, checksum, in_order, ip_offset, second_fold_checks

# Each edge gets its own share of the frames (shares()): none is left to chance.
EDGES = ("random", "udp_no_checksum", "l4_input_zero", "l4_input_ffff", "ip_input_zero", "odd_payload",
         "ip_options", "icmp", "vlan", "fragment", "padded_short", "l4_result_zero", "ip_result_zero",
         "second_fold")
RESULT_EDGES = ("l4_result_zero", "ip_result_zero", "second_fold")


@dataclasses.dataclass(frozen=True)
class Pool:
    """What frames are made of: the destinations (and ports) that steer the
    program, e.g. read from the maps it was given, and the Ethernet addresses."""

    destinations: tuple[str, ...] = ("10.96.0.10", "192.0.2.1")
    sources: tuple[str, ...] = ("10.0.1.2", "198.51.100.7")
    ports: tuple[int, ...] = (80, 53, 7, 443, 8080)
    src_mac: str = "02:00:00:00:02:02"
    dst_mac: str = "02:00:00:00:02:01"
    # (destination, port, protocol) the program was seen to change (discover());
    # nine frames in ten go there when there are any.
    targets: tuple[tuple[str, int, int], ...] = ()


def discover(pool: Pool, run: Callable[[bytes], bytes]) -> tuple[tuple[str, int, int], ...]:
    """Which (destination, port, protocol) of the pool the program changes:
    one plain frame to each, through the program."""
    found = []
    src = pool.sources[0]
    for dst in pool.destinations:
        probes = [(port, TCP, P.tcp(src, dst, 40000, port, b"probe!", flags="S")) for port in pool.ports]
        probes += [(port, UDP, P.udp(src, dst, 40000, port, b"probe!")) for port in pool.ports]
        probes.append((0, ICMP, P.icmp_echo(7, 1, b"probe!")))
        for port, proto, l4 in probes:
            frame = P.ether(pool.dst_mac, pool.src_mac) + P.ipv4(src, dst, proto, l4)
            if run(frame) != frame:
                found.append((dst, port, proto))
    return tuple(found)


@dataclasses.dataclass(frozen=True)
class Case:
    edge: str
    frame: bytes
    aimed: bool = True  # False: a result edge whose aim could not be taken (the probe was not rewritten)


def _destination(draw, pool: Pool, proto: int) -> tuple[str, int, int]:
    """Where a frame of `proto` goes: mostly a target the program acts on
    (of that protocol if it has one), else anywhere in the pool."""
    fitting = [t for t in pool.targets if t[2] == proto]
    if fitting and draw(st.integers(0, 9)) < 9:
        dst, port, _ = draw(st.sampled_from(fitting))
        return dst, port or draw(st.sampled_from(pool.ports)), proto
    return draw(st.sampled_from(pool.destinations)), draw(st.sampled_from(pool.ports)), proto


def _options(draw, ihl: int, l4: bytes) -> bytes:
    """IP options for header length `ihl`: NOPs, or a record-route option
    whose bytes mimic the L4 header (from its 3rd byte on), so a parser that
    ignores ihl finds "ports" there that look real."""
    size = 4 * (ihl - 5)
    if size == 0 or draw(st.booleans()):
        return b"\x01" * size
    return (bytes([7, size]) + l4[2:size]).ljust(size, b"\0")


def _l4_frame(draw, pool: Pool, proto: int, *, payload_len: int | None = None, ihl: int | None = None,
              no_checksum: bool = False, vlan: int | None = None, flags: int = 0, frag: int = 0) -> bytes:
    dst, dport, proto = _destination(draw, pool, proto)
    if no_checksum:
        proto = UDP
    src, sport = draw(st.sampled_from(pool.sources)), draw(st.integers(1, 65535))
    size = payload_len if payload_len is not None else draw(st.integers(2, 300))
    payload = draw(st.binary(min_size=size, max_size=size))
    if proto == TCP:
        l4 = P.tcp(src, dst, sport, dport, payload, seq=draw(st.integers(0, 2**32 - 1)),
                   flags=draw(st.sampled_from(["S", "A", "PA", "FA"])))
    elif proto == UDP:
        l4 = P.udp(src, dst, sport, dport, payload, no_checksum=no_checksum)
    else:
        l4 = P.icmp_echo(draw(st.integers(0, 65535)), draw(st.integers(0, 65535)), payload)
    ihl = ihl if ihl is not None else draw(st.sampled_from([5, 5, 5, 6, 15]))
    ip = P.ipv4(src, dst, proto, l4, options=_options(draw, ihl, l4), ident=draw(st.integers(0, 65535)),
                flags=flags, frag=frag)
    return P.ether(pool.dst_mac, pool.src_mac, vlans=(vlan,) if vlan is not None else ()) + ip


def _with_l4_checksum(frame: bytes, target: int, proto: int) -> bytes:
    """Steer the (valid) L4 checksum to `target` (UDP 0 and 0xFFFF: computes to 0, sent 0xFFFF)."""
    if target == 0xFFFF or (proto == UDP and target == 0):
        zero = P.steer_l4_checksum(frame, 0)
        at = P.l4_checksum_at(zero)
        return zero[:at] + b"\xff\xff" + zero[at + 2:]
    return P.steer_l4_checksum(frame, target)


def _changed_words(before: bytes, after: bytes, skip: set[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(old, new) 16-bit words that differ, skipping word offsets in `skip`."""
    old, new = [], []
    for at in range(0, min(len(before), len(after)) - 1, 2):
        if at not in skip and before[at:at + 2] != after[at:at + 2]:
            old.append(struct.unpack_from("!H", before, at)[0])
            new.append(struct.unpack_from("!H", after, at)[0])
    return tuple(old), tuple(new)


def _aim_at_result(draw, edge: str, frame: bytes, run: Callable[[bytes], bytes]) -> Case:
    """Steer `frame` so that a correct rewrite of it (what `run` changes, its
    checksums recomputed) hits `edge`."""
    out = run(frame)
    off = ip_offset(frame)
    same_shape = (out != frame and len(out) == len(frame) and ip_offset(out) == off
                  and out[off] == frame[off] and out[off + 9] == frame[off + 9])
    if not same_shape:
        return Case(edge, frame, aimed=False)
    proto, ihl = frame[off + 9], (frame[off] & 0xF) * 4
    correct = P.rewrite(out)  # the output a correct program would send: its checksums recomputed
    if edge == "l4_result_zero":
        steered = _with_l4_checksum(correct, 0, proto)
        at = P.payload_offset(frame)
        return Case(edge, P.rewrite(frame[:at] + steered[at:at + 2] + frame[at + 2:]))
    if edge == "ip_result_zero":
        steered = P.steer_ip_checksum(correct, 0)
        return Case(edge, P.rewrite(frame[:off + 4] + steered[off + 4:off + 6] + frame[off + 6:]))
    # second_fold: the IPv4 header's update or the L4 one, in either word order
    order = draw(st.sampled_from(ORDERS))
    ip_old, ip_new = _changed_words(frame[off:off + ihl], out[off:off + ihl], skip={10})
    l4_at, l4_end = off + ihl, off + struct.unpack_from("!H", frame, off + 2)[0]
    where = P.CHECKSUM_AT[proto]
    l4_old, l4_new = _changed_words(frame[l4_at:l4_end], out[l4_at:l4_end], skip={where})
    addr_old, addr_new = ((), ()) if proto == ICMP else \
        _changed_words(frame[off + 12:off + 20], out[off + 12:off + 20], skip=set())  # the pseudo-header
    choices = []
    if ip_old:
        choices.append(("ip", second_fold_checks(*in_order(order, ip_old, ip_new))))
    if (l4_old or addr_old) and not (proto == UDP and struct.unpack_from("!H", frame, l4_at + 6)[0] == 0):
        choices.append(("l4", second_fold_checks(*in_order(order, l4_old + addr_old, l4_new + addr_new))))
    choices = [(what, [in_order(order, c) for c in checks if in_order(order, c) not in (0, 0xFFFF)])
               for what, checks in choices]
    choices = [(what, checks) for what, checks in choices if checks]
    if not choices:
        return Case(edge, frame, aimed=False)
    what, checks = draw(st.sampled_from(choices))
    target = draw(st.sampled_from(checks))
    if what == "ip":
        return Case(edge, P.steer_ip_checksum(frame, target))
    return Case(edge, _with_l4_checksum(frame, target, proto))


def shares(examples: int) -> dict[str, int]:
    """How many of `examples` frames each edge gets: equal shares, result
    edges twice (their aim needs the probe's output), the rest to random."""
    weights = {edge: 2 if edge in RESULT_EDGES else 1 for edge in EDGES}
    each = examples // sum(weights.values())
    split = {edge: each * weight for edge, weight in weights.items()}
    split["random"] += examples - sum(split.values())
    return split


@st.composite
def cases(draw, pool: Pool, run: Callable[[bytes], bytes], edge: str) -> Case:
    """One frame aimed at `edge`; `run(frame) -> the program's output frame`."""
    # The protocols the program was seen to act on (all three if none).
    proto = draw(st.sampled_from(sorted({t[2] for t in pool.targets}) or [TCP, UDP, ICMP]))
    if edge == "udp_no_checksum":
        return Case(edge, _l4_frame(draw, pool, UDP, no_checksum=True))
    if edge == "l4_input_zero":  # TCP or ICMP 0x0000; UDP: computes to 0, sent 0xFFFF
        return Case(edge, _with_l4_checksum(_l4_frame(draw, pool, proto), 0, proto))
    if edge == "l4_input_ffff":
        return Case(edge, _with_l4_checksum(_l4_frame(draw, pool, TCP), 0xFFFF, TCP))
    if edge == "ip_input_zero":
        return Case(edge, P.steer_ip_checksum(_l4_frame(draw, pool, proto), 0))
    if edge == "odd_payload":
        return Case(edge, _l4_frame(draw, pool, proto, payload_len=2 * draw(st.integers(1, 150)) + 1))
    if edge == "ip_options":
        return Case(edge, _l4_frame(draw, pool, proto, ihl=draw(st.sampled_from(range(6, 16)))))
    if edge == "icmp":
        return Case(edge, _l4_frame(draw, pool, ICMP))  # whatever the program acts on, ICMP too
    if edge == "vlan":
        return Case(edge, _l4_frame(draw, pool, proto, vlan=draw(st.integers(1, 4094))))
    if edge == "fragment":
        first = draw(st.booleans())
        return Case(edge, _l4_frame(draw, pool, proto, flags=1 if first else 0, frag=0 if first else 185))
    if edge == "padded_short":
        # A packet that ends inside (or before) its L4 header, in a padded
        # 60-byte frame whose padding still holds what looked like the rest.
        frame = bytearray(_l4_frame(draw, pool, proto, payload_len=2, ihl=5).ljust(60, b"\0"))
        off = ip_offset(bytes(frame))
        tot_len = draw(st.sampled_from([20, 24, 28, 30]))
        frame[off + 2:off + 4] = struct.pack("!H", tot_len)
        if P.CHECKSUM_AT[frame[off + 9]] + 2 <= tot_len - 20:
            # The L4 checksum field is inside the packet: make it valid for
            # the shortened packet, so a correct program's output is valid.
            return Case(edge, P.rewrite(bytes(frame)))
        frame[off + 10:off + 12] = b"\0\0"
        frame[off + 10:off + 12] = struct.pack("!H", checksum(bytes(frame[off:off + 20])))
        return Case(edge, bytes(frame))
    if edge in RESULT_EDGES:
        return _aim_at_result(draw, edge, _l4_frame(draw, pool, proto), run)
    return Case(edge, _l4_frame(draw, pool, draw(st.sampled_from([TCP, UDP, ICMP]))))
