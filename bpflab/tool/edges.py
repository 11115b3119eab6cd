"""Frames for any program, aimed at the edges of one's complement checksums,
IPv4 and IPv6.

Input edges are set directly: a TCP checksum of 0x0000 or 0xFFFF, UDP 0 ("no
checksum" over IPv4; over IPv6 already wrong, which a program must not make
worse), a UDP checksum computing to 0 (sent 0xFFFF), an IPv4 header checksum
of 0, odd payload lengths, every IPv4 header length, IPv6 extension headers
before the upper layer, ICMP and ICMPv6, VLAN tags, fragments, short
packets in padded frames.

Result edges depend on what the program rewrites, which bpflab does not know
in advance: a probe frame is run through the program first, the words it
changed are read off its output, and a free word of the input (the IPv4
identification, the first payload bytes) is steered so that a *correct*
rewrite lands on the edge: a checksum of 0x0000 after the rewrite, or an
RFC 1624 update whose sum carries twice (in big-endian word order, or as a
little-endian CPU adds the wire's bytes). Each case says which edge it aims
at and whether the aim could be taken.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import struct
from collections.abc import Callable

from hypothesis import strategies as st

from bpflab.lab import packets as P
from bpflab.lab.checksums import ORDERS, checksum, in_order, second_fold_checks
from bpflab.lab.headers import CHECKSUM_AT, ICMP, ICMPV6, TCP, UDP, parse

# Each edge gets its own share of the frames (shares()): none is left to chance.
EDGES = ("random", "udp_no_checksum", "l4_input_zero", "l4_input_ffff", "ip_input_zero", "odd_payload",
         "ip_options", "ext_headers", "icmp", "vlan", "fragment", "padded_short", "l4_result_zero", "ip_result_zero",
         "second_fold")
RESULT_EDGES = ("l4_result_zero", "ip_result_zero", "second_fold")
ONLY = {"ip_input_zero": 4, "ip_options": 4, "ip_result_zero": 4, "ext_headers": 6}  # edges of one family
FAMILIES = (4, 6)


def family(address: str) -> int:
    return ipaddress.ip_address(address).version


def icmp_of(fam: int) -> int:
    return ICMP if fam == 4 else ICMPV6


@dataclasses.dataclass(frozen=True)
class Pool:
    """What frames are made of: the destinations (and ports) that steer the
    program, e.g. read from the maps it was given, and the Ethernet addresses.
    Destinations of either family; `families` says which are aimed at."""

    destinations: tuple[str, ...] = ("10.96.0.10", "192.0.2.1", "fd00:96::10", "2001:db8::1")
    sources: tuple[str, ...] = ("10.0.1.2", "198.51.100.7", "fd00:1::2", "2001:db8:51::7")
    ports: tuple[int, ...] = (80, 53, 7, 443, 8080)
    src_mac: str = "02:00:00:00:02:02"
    dst_mac: str = "02:00:00:00:02:01"
    # (destination, port, protocol) the program was seen to change (discover());
    # nine frames in ten go there when there are any.
    targets: tuple[tuple[str, int, int], ...] = ()
    families: tuple[int, ...] = FAMILIES
    # (destination, port or 0, protocol) named by hand (--target): aimed at even if no probe changed
    named: tuple[tuple[str, int, int], ...] = ()

    def of(self, fam: int, addresses: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(a for a in addresses if family(a) == fam)

    @property
    def aimed_families(self) -> tuple[int, ...]:
        """The families with both a destination and a source to aim with."""
        return tuple(f for f in self.families if self.of(f, self.destinations) and self.of(f, self.sources))

    def edges(self) -> tuple[str, ...]:
        """The edges these families can reach."""
        return tuple(e for e in EDGES if ONLY.get(e) is None or ONLY[e] in self.aimed_families)


def probes(pool: Pool, dst: str) -> list[tuple[int, int, bytes]]:
    """(port, protocol, frame) of one plain TCP, UDP and ICMP(v6) frame to `dst`."""
    fam = family(dst)
    src = pool.of(fam, pool.sources)[0]
    found = [(port, TCP, P.tcp(src, dst, 40000, port, b"probe!", flags="S")) for port in pool.ports]
    found += [(port, UDP, P.udp(src, dst, 40000, port, b"probe!")) for port in pool.ports]
    found.append((0, icmp_of(fam), P.icmp_echo(7, 1, b"probe!") if fam == 4 else P.icmp6_echo(src, dst, 7, 1, b"probe!")))
    ethertype = P.ETH_P_IP if fam == 4 else P.ETH_P_IPV6
    return [(port, proto, P.ether(pool.dst_mac, pool.src_mac, ethertype) + P.ip_packet(src, dst, proto, l4))
            for port, proto, l4 in found]


def discover(pool: Pool, run: Callable[[bytes], bytes]) -> tuple[tuple[str, int, int], ...]:
    """Which (destination, port, protocol) of the pool the program changes:
    one plain frame to each, through the program."""
    found = []
    for dst in pool.destinations:
        if family(dst) not in pool.aimed_families:
            continue
        for port, proto, frame in probes(pool, dst):
            if run(frame) != frame:
                found.append((dst, port, proto))
    return tuple(dict.fromkeys(found))


class TargetSyntaxError(ValueError):
    """A --target that does not say ADDRESS[:PORT][/PROTO]."""


PROTOCOLS = {"tcp": TCP, "udp": UDP, "icmp": ICMP}


def parse_target(text: str) -> list[tuple[str, int, int]]:
    """"10.96.0.10:80/tcp", "[fd00::10]:53/udp", "fd00::10", "10.96.0.10/icmp"
    -> [(address, port or 0, protocol)]; without a protocol, TCP and UDP
    (with a port) or all three (without)."""
    where, slash, proto = text.partition("/")
    if slash and proto.lower() not in PROTOCOLS:
        raise TargetSyntaxError(f"--target {text}: the protocol is tcp, udp or icmp, not {proto!r}")
    port = "0"
    if where.startswith("["):
        address, bracket, rest = where[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise TargetSyntaxError(f"--target {text}: want [IPV6]:PORT")
        port = rest[1:] or "0"
    elif where.count(":") == 1:
        address, _, port = where.partition(":")
    else:
        address = where
    try:
        fam = ipaddress.ip_address(address).version
        number = int(port)
    except ValueError:
        raise TargetSyntaxError(f"--target {text}: want ADDRESS[:PORT][/PROTO], an IPv6 address in brackets when a "
                                "port follows ([fd00::10]:53/udp)") from None
    if not 0 <= number <= 65535:
        raise TargetSyntaxError(f"--target {text}: port {number} is not 0..65535")
    if slash:
        protos = [icmp_of(fam) if PROTOCOLS[proto.lower()] == ICMP else PROTOCOLS[proto.lower()]]
    else:
        protos = [TCP, UDP] + ([] if number else [icmp_of(fam)])
    if number and protos == [icmp_of(fam)]:
        raise TargetSyntaxError(f"--target {text}: ICMP has no ports")
    return [(str(ipaddress.ip_address(address)), 0 if p in (ICMP, ICMPV6) else number, p) for p in protos]


def named(pool: Pool, texts: list[str]) -> Pool:
    """The pool aimed at targets named by hand (their addresses and ports
    added to what is probed)."""
    targets = tuple(t for text in texts for t in parse_target(text))
    if not targets:
        return pool
    destinations = tuple(dict.fromkeys(t[0] for t in targets))
    ports = tuple(dict.fromkeys(t[1] for t in targets if t[1])) or pool.ports
    return dataclasses.replace(pool, destinations=destinations, ports=ports, named=targets)


@dataclasses.dataclass(frozen=True)
class Case:
    edge: str
    frame: bytes
    aimed: bool = True  # False: a result edge whose aim could not be taken (the probe was not rewritten)


def _destination(draw, pool: Pool, proto: int, fam: int) -> tuple[str, int, int]:
    """Where a frame of `proto` and family `fam` goes: mostly a target the
    program acts on (of that protocol if it has one), else anywhere in the pool."""
    fitting = [t for t in pool.targets if t[2] == proto and family(t[0]) == fam]
    if fitting and draw(st.integers(0, 9)) < 9:
        dst, port, _ = draw(st.sampled_from(fitting))
        return dst, port or draw(st.sampled_from(pool.ports)), proto
    return draw(st.sampled_from(pool.of(fam, pool.destinations))), draw(st.sampled_from(pool.ports)), proto


def _options(draw, ihl: int, l4: bytes) -> bytes:
    """IP options for header length `ihl`: NOPs, or a record-route option
    whose bytes mimic the L4 header (from its 3rd byte on), so a parser that
    ignores ihl finds "ports" there that look real."""
    size = 4 * (ihl - 5)
    if size == 0 or draw(st.booleans()):
        return b"\x01" * size
    return (bytes([7, size]) + l4[2:size]).ljust(size, b"\0")


def _extensions(draw, dst: str) -> tuple[tuple[int, bytes], ...]:
    """A chain of IPv6 extension headers before the upper layer: hop-by-hop
    and destination options, a routing header with no segment left (its
    destination stays the final one), an atomic fragment header."""
    chain = []
    if draw(st.booleans()):
        chain.append(P.extension(0, bytes(draw(st.sampled_from([0, 4, 12])))))
    if draw(st.booleans()):
        chain.append((43, bytes([4, 0, 0, 0, 0, 0]) + P.ip(dst)))  # segment routing, segments left 0
    if draw(st.booleans()):
        chain.append(P.extension(60, bytes(draw(st.sampled_from([0, 6])))))
    if draw(st.booleans()) or not chain:
        chain.append((44, struct.pack("!HI", 0, draw(st.integers(0, 2**32 - 1)))))  # offset 0, no more
    return tuple(chain)


def _l4_frame(draw, pool: Pool, proto: int, fam: int, *, payload_len: int | None = None, ihl: int | None = None,
              no_checksum: bool = False, vlan: int | None = None, fragment: str = "", extensions: bool = False
              ) -> bytes:
    proto = icmp_of(fam) if proto in (ICMP, ICMPV6) else proto
    dst, dport, proto = _destination(draw, pool, proto, fam)
    if no_checksum:
        proto = UDP
    src, sport = draw(st.sampled_from(pool.of(fam, pool.sources))), draw(st.integers(1, 65535))
    size = payload_len if payload_len is not None else draw(st.integers(2, 300))
    payload = draw(st.binary(min_size=size, max_size=size))
    if proto == TCP:
        l4 = P.tcp(src, dst, sport, dport, payload, seq=draw(st.integers(0, 2**32 - 1)),
                   flags=draw(st.sampled_from(["S", "A", "PA", "FA"])))
    elif proto == UDP:
        l4 = P.udp(src, dst, sport, dport, payload, no_checksum=no_checksum)
    elif fam == 4:
        l4 = P.icmp_echo(draw(st.integers(0, 65535)), draw(st.integers(0, 65535)), payload)
    else:
        l4 = P.icmp6_echo(src, dst, draw(st.integers(0, 65535)), draw(st.integers(0, 65535)), payload)
    vlans = (vlan,) if vlan is not None else ()
    if fam == 4:
        ihl = ihl if ihl is not None else draw(st.sampled_from([5, 5, 5, 6, 15]))
        flags, frag = {"": (0, 0), "first": (1, 0), "later": (0, 185)}[fragment]
        ip = P.ipv4(src, dst, proto, l4, options=_options(draw, ihl, l4), ident=draw(st.integers(0, 65535)),
                    flags=flags, frag=frag)
        return P.ether(pool.dst_mac, pool.src_mac, vlans=vlans) + ip
    chain = _extensions(draw, dst) if extensions else ()
    if fragment:
        chain += ((44, struct.pack("!HI", 1 if fragment == "first" else 185 << 3, draw(st.integers(0, 2**32 - 1)))),)
    return P.ether(pool.dst_mac, pool.src_mac, P.ETH_P_IPV6, vlans=vlans) + P.ipv6(src, dst, proto, l4, extensions=chain)


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
    net, net_out = parse(frame).networks[0], (parse(out).networks or (None,))[0]
    same_shape = (out != frame and len(out) == len(frame) and net_out is not None and net_out.family == net.family
                  and (net_out.offset, net_out.upper, net_out.proto) == (net.offset, net.upper, net.proto))
    if not same_shape:
        return Case(edge, frame, aimed=False)
    off, proto = net.offset, net.proto
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
    choices = []
    if net.family == 4:
        ip_old, ip_new = _changed_words(frame[off:net.upper], out[off:net.upper], skip={10})
        if ip_old:
            choices.append(("ip", second_fold_checks(*in_order(order, ip_old, ip_new))))
    l4_at, l4_end = net.upper, net.end
    l4_old, l4_new = _changed_words(frame[l4_at:l4_end], out[l4_at:l4_end], skip={CHECKSUM_AT[proto]})
    # the pseudo-header's addresses (none for ICMP)
    addr_old, addr_new = ((), ()) if proto == ICMP else _changed_words(net.src + net.dst, net_out.src + net_out.dst,
                                                                        skip=set())
    udp_zero = proto == UDP and struct.unpack_from("!H", frame, l4_at + 6)[0] == 0
    if (l4_old or addr_old) and not udp_zero:
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


def shares(examples: int, edges: tuple[str, ...] = EDGES) -> dict[str, int]:
    """How many of `examples` frames each edge gets: equal shares, result
    edges twice (their aim needs the probe's output), the rest to random."""
    weights = {edge: 2 if edge in RESULT_EDGES else 1 for edge in edges}
    each = examples // sum(weights.values())
    split = {edge: each * weight for edge, weight in weights.items()}
    split["random"] += examples - sum(split.values())
    return split


def _padded_short(draw, pool: Pool, proto: int, fam: int) -> Case:
    """A packet that ends inside (or before) its L4 header, in a padded frame
    whose padding still holds what looked like the rest."""
    frame = bytearray(_l4_frame(draw, pool, proto, fam, payload_len=2, ihl=5))
    net = parse(bytes(frame)).networks[0]
    short = draw(st.sampled_from([0, 4, 8, 10]))  # bytes of the L4 header left inside the packet
    if fam == 4:
        frame = bytearray(bytes(frame).ljust(60, b"\0"))
        frame[net.offset + 2:net.offset + 4] = struct.pack("!H", 20 + short)
    else:
        frame = bytearray(bytes(frame).ljust(net.upper + 12, b"\0"))
        frame[net.offset + 4:net.offset + 6] = struct.pack("!H", net.upper - net.offset - 40 + short)
    if net.proto == UDP and short >= 8:  # the whole UDP header inside: its length says where the datagram ends
        frame[net.upper + 4:net.upper + 6] = struct.pack("!H", short)
    if parse(bytes(frame)).segment() is not None:
        # The L4 checksum field is inside the packet: make it valid for the
        # shortened packet, so a correct program's output is valid.
        return Case("padded_short", P.rewrite(bytes(frame)))
    if fam == 4:
        frame[net.offset + 10:net.offset + 12] = b"\0\0"
        frame[net.offset + 10:net.offset + 12] = struct.pack("!H", checksum(bytes(frame[net.offset:net.offset + 20])))
    return Case("padded_short", bytes(frame))


@st.composite
def cases(draw, pool: Pool, run: Callable[[bytes], bytes], edge: str) -> Case:
    """One frame aimed at `edge`; `run(frame) -> the program's output frame`."""
    # Nine frames in ten go to a family the program was seen to act on, like its targets.
    acting = sorted({family(t[0]) for t in pool.targets} & set(pool.aimed_families))
    fam = ONLY.get(edge) or draw(st.sampled_from(acting if acting and draw(st.integers(0, 9)) < 9
                                                 else list(pool.aimed_families)))
    # The protocols the program was seen to act on in that family (all three if none).
    acted = {t[2] for t in pool.targets if family(t[0]) == fam}
    proto = draw(st.sampled_from(sorted(acted) or [TCP, UDP, icmp_of(fam)]))
    if edge == "udp_no_checksum":
        return Case(edge, _l4_frame(draw, pool, UDP, fam, no_checksum=True))
    if edge == "l4_input_zero":  # TCP or ICMP 0x0000; UDP: computes to 0, sent 0xFFFF
        return Case(edge, _with_l4_checksum(_l4_frame(draw, pool, proto, fam), 0, proto))
    if edge == "l4_input_ffff":
        return Case(edge, _with_l4_checksum(_l4_frame(draw, pool, TCP, fam), 0xFFFF, TCP))
    if edge == "ip_input_zero":
        return Case(edge, P.steer_ip_checksum(_l4_frame(draw, pool, proto, fam), 0))
    if edge == "odd_payload":
        return Case(edge, _l4_frame(draw, pool, proto, fam, payload_len=2 * draw(st.integers(1, 150)) + 1))
    if edge == "ip_options":
        return Case(edge, _l4_frame(draw, pool, proto, fam, ihl=draw(st.sampled_from(range(6, 16)))))
    if edge == "ext_headers":
        return Case(edge, _l4_frame(draw, pool, proto, fam, extensions=True))
    if edge == "icmp":
        return Case(edge, _l4_frame(draw, pool, icmp_of(fam), fam))  # whatever the program acts on, ICMP too
    if edge == "vlan":
        return Case(edge, _l4_frame(draw, pool, proto, fam, vlan=draw(st.integers(1, 4094))))
    if edge == "fragment":
        return Case(edge, _l4_frame(draw, pool, proto, fam, fragment=draw(st.sampled_from(["first", "later"]))))
    if edge == "padded_short":
        return _padded_short(draw, pool, proto, fam)
    if edge in RESULT_EDGES:
        return _aim_at_result(draw, edge, _l4_frame(draw, pool, proto, fam), run)
    return Case(edge, _l4_frame(draw, pool, draw(st.sampled_from([TCP, UDP, icmp_of(fam)])), fam))
