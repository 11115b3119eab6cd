"""Frames aimed at the edges of one's complement arithmetic, for both
directions of a NAT, and an independent classifier that says which edges a
frame really hits (so a test can count them and assert the count).

An edge is reached by steering one free word of the packet (the IP
identification for the IPv4 header checksum, the first two payload bytes
for the TCP/UDP one) until the checksum before, or after, the rewrite has
the value the edge needs. The rewrite itself is lab.packets.rewrite: every
checksum recomputed from scratch, nothing incremental.

Edges (EDGES):
  random          no aiming: addresses, ports, lengths, options at random
  odd_payload     an odd number of payload bytes (the last word is padded)
  ihl_6 .. ihl_15 IP options: every header length from 6 to 15 words
  udp_no_checksum UDP with checksum 0: "none", must stay 0
  l4_input_zero   the TCP checksum is 0x0000 / the UDP one computes to 0 (sent 0xFFFF)
  l4_input_ffff   a TCP checksum stored as 0xFFFF (one's complement's other zero)
  l4_result_zero  the rewritten TCP checksum is 0x0000 / the UDP one computes to 0
  ip_input_zero   the IPv4 header checksum is 0x0000
  ip_result_zero  the rewritten IPv4 header checksum is 0x0000
  ip_second_fold_be  RFC 1624 eqn 3 on the IPv4 checksum needs a second carry
                     fold, adding the RFC's big-endian words
  ip_second_fold_le  ... adding the wire's bytes as a little-endian CPU loads
                     them (what bpf/csum.h does on x86 and arm64: one's
                     complement sums do not depend on byte order, carries do)
  l4_second_fold_be/_le  the same for the TCP/UDP checksum (address step or port step)
"""
from __future__ import annotations

import dataclasses
import struct

from hypothesis import assume
from hypothesis import strategies as st

from bpflab.lab import packets as P
from bpflab.lab.checksums import (
    ORDERS,
    TCP,
    UDP,
    in_order,
    incremental_update,
    ip_offset,
    needs_second_fold,
    second_fold_checks,
    words,
)
from tests.xdp_dnat_frames import CLIENT_IP, CLIENT_MAC, LB_IN_MAC, LB_OUT_MAC

IHL_EDGES = tuple(f"ihl_{n}" for n in range(6, 16))
EDGES = ("random", "odd_payload", *IHL_EDGES, "udp_no_checksum", "l4_input_zero", "l4_input_ffff",
         "l4_result_zero", "ip_input_zero", "ip_result_zero", "ip_second_fold_be", "ip_second_fold_le",
         "l4_second_fold_be", "l4_second_fold_le")


# -- the NAT being tested -----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Nat:
    """What a direction changes: the address and port fields it rewrites."""

    direction: str  # "forward" (destination) or "return" (source)
    proto: int
    old_addr: str
    new_addr: str
    old_port: int
    new_port: int
    smac: str | None = None  # forward only: the MACs the FIB gives
    dmac: str | None = None

    def apply(self, frame: bytes) -> bytes:
        if self.direction == "forward":
            return P.rewrite(frame, dst=self.new_addr, dport=self.new_port, smac=self.smac, dmac=self.dmac)
        return P.rewrite(frame, src=self.new_addr, sport=self.new_port)


@dataclasses.dataclass(frozen=True)
class Case:
    edge: str
    nat: Nat
    frame: bytes
    expected: bytes


def _fields(frame: bytes) -> tuple[int, int, int, int]:
    """(IP checksum, L4 checksum, IP header length, L4 payload length)."""
    off = ip_offset(frame)
    ihl = (frame[off] & 0xF) * 4
    tot_len = struct.unpack_from("!H", frame, off + 2)[0]
    l4 = off + ihl
    header = (frame[l4 + 12] >> 4) * 4 if frame[off + 9] == TCP else 8
    return (struct.unpack_from("!H", frame, off + 10)[0], struct.unpack_from("!H", frame, P.l4_checksum_at(frame))[0],
            ihl, tot_len - ihl - header)


def classify(case: Case) -> set[str]:
    """Every edge `case` hits, judged from its bytes alone."""
    nat, frame, out = case.nat, case.frame, case.expected
    ip_in, l4_in, ihl, payload_len = _fields(frame)
    ip_out, l4_out, _, _ = _fields(out)
    udp = nat.proto == UDP
    old, new = words(P.ip(nat.old_addr)), words(P.ip(nat.new_addr))
    found = {"random"}
    if payload_len % 2:
        found.add("odd_payload")
    found.add(f"ihl_{ihl // 4}")
    if udp and l4_in == 0:
        found.add("udp_no_checksum")
    if l4_in == (0xFFFF if udp else 0x0000):
        found.add("l4_input_zero")
    if not udp and l4_in == 0xFFFF:
        found.add("l4_input_ffff")
    if l4_out == (0xFFFF if udp else 0x0000):
        found.add("l4_result_zero")
    if ip_in == 0:
        found.add("ip_input_zero")
    if ip_out == 0:
        found.add("ip_result_zero")
    for order in ORDERS:
        check, o, n = in_order(order, ip_in, old, new)
        if needs_second_fold(check, o, n):
            found.add(f"ip_second_fold_{order}")
        if not (udp and l4_in == 0):
            check, o, n, po, pn = in_order(order, l4_in, old, new, (nat.old_port,), (nat.new_port,))
            if needs_second_fold(check, o, n) or needs_second_fold(incremental_update(check, o, n), po, pn):
                found.add(f"l4_second_fold_{order}")
    return found


# -- strategies ---------------------------------------------------------------

CLIENT = (CLIENT_IP, CLIENT_MAC)
TCP_OPTIONS = [b"\x02\x04\x05\xb4", b"\x01\x01\x04\x02", b"\x01\x03\x03\x07", b"\x08\x0a" + bytes(8)]


def _with_l4_checksum(frame: bytes, target: int, proto: int) -> bytes:
    """The frame with its (valid) L4 checksum steered to `target`. A UDP
    checksum that computes to 0 is sent as 0xFFFF (so UDP 0 and 0xFFFF both
    mean that); a TCP 0xFFFF is one's complement's other zero, stored as such."""
    if target == 0xFFFF or (proto == UDP and target == 0):
        zero = P.steer_l4_checksum(frame, 0)
        at = P.l4_checksum_at(zero)
        return zero[:at] + b"\xff\xff" + zero[at + 2:]
    return P.steer_l4_checksum(frame, target)


def _steering_word_at(frame: bytes) -> int:
    """The first payload word: what steer_l4_checksum changes."""
    l4 = P.l4_offset(frame)
    return l4 + ((frame[l4 + 12] >> 4) * 4 if frame[ip_offset(frame) + 9] == TCP else 8)


def _payload_word_from(source: bytes, into: bytes) -> bytes:
    """`into` with the steering word of `source` (same layout), checksums recomputed."""
    at = _steering_word_at(into)
    return P.rewrite(into[:at] + source[at:at + 2] + into[at + 2:])


def _ident_from(source: bytes, into: bytes) -> bytes:
    """`into` with the IP identification of `source`, checksums recomputed."""
    off = ip_offset(into)
    return P.rewrite(into[:off + 4] + source[off + 4:off + 6] + into[off + 6:])


@st.composite
def nat_cases(draw, direction: str, edge: str, backends: tuple[tuple[str, str], ...]) -> Case:
    """A frame that hits `edge` for `direction`, with its expected rewrite.
    `backends`: (address, MAC) pairs the forward FIB can reach."""
    proto = UDP if edge == "udp_no_checksum" else draw(st.sampled_from([TCP, UDP]))
    if edge == "l4_input_ffff":
        proto = TCP
    vip = f"10.96.{draw(st.integers(0, 255))}.{draw(st.integers(1, 254))}"
    backend, backend_mac = draw(st.sampled_from(backends))
    port, backend_port = draw(st.integers(1, 65535)), draw(st.integers(1, 65535))
    client_port = draw(st.integers(1, 65535))
    ihl = int(edge[4:]) if edge in IHL_EDGES else draw(st.sampled_from([5, 5, 5, 6, 15]))
    size = draw(st.integers(2, 600))
    if edge == "odd_payload" and size % 2 == 0:
        size += 1
    payload = draw(st.binary(min_size=size, max_size=size))
    tcp_options = b"".join(draw(st.lists(st.sampled_from(TCP_OPTIONS), max_size=3)))
    ident = draw(st.integers(0, 65535))
    if direction == "forward":
        nat = Nat(direction, proto, vip, backend, port, backend_port, LB_OUT_MAC, backend_mac)
        src, dst, sport, dport, smac, dmac = CLIENT[0], vip, client_port, port, CLIENT[1], LB_IN_MAC
    else:
        nat = Nat(direction, proto, backend, vip, backend_port, port)
        src, dst, sport, dport, smac, dmac = backend, CLIENT[0], backend_port, client_port, backend_mac, LB_OUT_MAC
    if proto == TCP:
        l4 = P.tcp(src, dst, sport, dport, payload, seq=draw(st.integers(0, 2**32 - 1)),
                   flags=draw(st.sampled_from(["S", "A", "PA", "FA", "R"])), options=tcp_options)
    else:
        l4 = P.udp(src, dst, sport, dport, payload, no_checksum=edge == "udp_no_checksum")
    frame = P.ether(dmac, smac) + P.ipv4(src, dst, proto, l4, options=b"\x01" * (4 * (ihl - 5)), ident=ident)
    frame = _aim(draw, frame, nat, edge)
    return Case(edge, nat, frame, nat.apply(frame))


def _aim(draw, frame: bytes, nat: Nat, edge: str) -> bytes:
    old, new = words(P.ip(nat.old_addr)), words(P.ip(nat.new_addr))
    if edge == "l4_input_zero":
        return _with_l4_checksum(frame, 0, nat.proto)
    if edge == "l4_input_ffff":
        return _with_l4_checksum(frame, 0xFFFF, nat.proto)
    if edge == "ip_input_zero":
        return P.steer_ip_checksum(frame, 0)
    if edge == "ip_result_zero":
        return _ident_from(P.steer_ip_checksum(nat.apply(frame), 0), frame)
    if edge == "l4_result_zero":
        return _payload_word_from(_with_l4_checksum(nat.apply(frame), 0, nat.proto), frame)
    if edge.startswith("ip_second_fold_"):
        order = edge.rsplit("_", 1)[1]
        checks = [in_order(order, c) for c in second_fold_checks(*in_order(order, old, new))]
        checks = [c for c in checks if c != 0xFFFF]
        assume(checks)  # these addresses never carry twice in this order: draw others
        return P.steer_ip_checksum(frame, draw(st.sampled_from(checks)))
    if edge.startswith("l4_second_fold_"):
        order = edge.rsplit("_", 1)[1]
        o, n, po, pn = in_order(order, old, new, (nat.old_port,), (nat.new_port,))
        address_step = second_fold_checks(o, n)
        # The port step carries twice only if the port grows (~old + new
        # reaches 0x10000); then the checksum after the address step must be
        # one of these.
        port_step = [incremental_update(c1, n, o) for c1 in second_fold_checks(po, pn)]
        port_step = [c for c in port_step if needs_second_fold(incremental_update(c, o, n), po, pn)]
        assume(address_step or port_step)
        checks = draw(st.sampled_from([c for c in (address_step, port_step) if c]))
        checks = [in_order(order, c) for c in checks]
        if nat.proto == UDP:
            checks = [c for c in checks if c != 0]  # 0 would mean "no checksum"
            assume(checks)
        return _with_l4_checksum(frame, draw(st.sampled_from(checks)), nat.proto)
    return frame
