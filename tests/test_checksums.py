"""The checksum oracle (lab.checksums) and the NAT model (lab.packets)
held to scapy, to RFC 1624 and to deliberately wrong frames: before any
test relies on them to judge a program, they must be shown to judge right."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    IPv6ExtHdrSegmentRouting,
    PadN,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether

from bpflab.lab import packets
from bpflab.lab.checksums import (
    BadChecksum,
    assert_checksums,
    checksum,
    incremental_update,
    needs_second_fold,
    pseudo_header_sum,
    verify_frame,
    verify_rewrite,
)
from bpflab.lab.headers import parse


def test_rfc1624_worked_example():
    # RFC 1624 section 4: HC 0xDD2F, m 0x5555 -> m' 0x3285 gives 0x0000, where
    # eqn 2 would give the "-0" 0xFFFF.
    assert incremental_update(0xDD2F, (0x5555,), (0x3285,)) == 0x0000


@given(st.binary(min_size=8, max_size=200).filter(lambda b: len(b) % 2 == 0), st.data())
def test_incremental_update_equals_full_recomputation(data, draw):
    words = draw.draw(st.integers(1, 2))
    i = draw.draw(st.integers(0, len(data) // 2 - words)) * 2
    new = draw.draw(st.binary(min_size=2 * words, max_size=2 * words))
    old_words = struct.unpack(f"!{words}H", data[i:i + 2 * words])
    changed = data[:i] + new + data[i + 2 * words:]
    incremental = incremental_update(checksum(data), old_words, struct.unpack(f"!{words}H", new))
    # One's complement has two zeros; they differ only in the all-zero case.
    assert incremental == checksum(changed) or {incremental, checksum(changed)} == {0x0000, 0xFFFF}


def test_a_second_fold_is_needed_exactly_when_one_fold_still_carries():
    # ~0x0000 + ~0x0000 + 0x0001 = 0x1FFFF -> one fold 0x10000 -> carries again
    assert needs_second_fold(0x0000, (0x0000,), (0x0001,))
    assert incremental_update(0x0000, (0x0000,), (0x0001,)) == 0xFFFE
    assert not needs_second_fold(0x1234, (0x0001,), (0x0002,))


L4 = st.sampled_from(["tcp", "udp", "icmp"])


@st.composite
def scapy_frames(draw):
    kind = draw(L4)
    payload = draw(st.binary(max_size=300))
    ip = IP(src=draw(st.sampled_from(["10.0.1.2", "192.0.2.1"])), dst="10.96.0.10", id=draw(st.integers(0, 65535)),
            options=[IPOption_NOP()] * draw(st.integers(0, 40)))
    l4 = {"tcp": lambda: TCP(sport=draw(st.integers(0, 65535)), dport=80, flags="PA", seq=draw(st.integers(0, 99))),
          "udp": lambda: UDP(sport=draw(st.integers(0, 65535)), dport=53),
          "icmp": lambda: ICMP(id=draw(st.integers(0, 65535)))}[kind]()
    tags = [Dot1Q(vlan=5)] if draw(st.booleans()) else []
    frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    for tag in tags:
        frame = frame / tag
    return kind, bytes(frame / ip / l4 / payload), 14 + 4 * len(tags)


@settings(max_examples=200)
@given(case=scapy_frames(), flip=st.integers(0, 2**16))
def test_the_oracle_accepts_what_scapy_builds_and_rejects_any_flipped_bit(case, flip):
    kind, frame, ip_at = case
    verdict = verify_frame(frame)
    assert verdict.ok and [f.layer for f in verdict.findings] == ["IPv4", kind.upper()], verdict
    # One bit flipped anywhere in the IP packet: some checksum must say so
    # (a flip inside an ignored field would be the oracle's blind spot).
    bit = flip % ((len(frame) - ip_at) * 8)
    bad = bytearray(frame)
    bad[ip_at + bit // 8] ^= 1 << (bit % 8)
    if bad[ip_at] >> 4 != 4 or (bad[ip_at] & 0xF) * 4 != (frame[ip_at] & 0xF) * 4 or bad[ip_at + 2:ip_at + 4] != \
            frame[ip_at + 2:ip_at + 4] or bad[ip_at + 9] != frame[ip_at + 9] or bad[ip_at + 6] & 0x3F:
        return  # a flip that changes what the frame is (version, lengths, protocol, fragment) is judged elsewhere
    if kind == "udp" and bad[ip_at + (frame[ip_at] & 0xF) * 4 + 4:][:2] != frame[ip_at + (frame[ip_at] & 0xF) * 4 + 4:][:2]:
        return  # the UDP length field: the datagram is then another one
    assert not verify_frame(bytes(bad)).ok, f"bit {bit} of the IP packet flipped and no checksum noticed"


@settings(max_examples=150)
@given(case=scapy_frames(), port=st.integers(1, 65535))
def test_the_nat_model_is_scapys_full_recomputation(case, port):
    kind, frame, ip_at = case
    if kind == "icmp" or ip_at != 14:
        return
    layer = TCP if kind == "tcp" else UDP
    theirs = Ether(frame)
    theirs[IP].dst, theirs[layer].dport, theirs.src = "10.244.1.5", port, "02:00:00:00:03:01"
    del theirs[IP].chksum, theirs[layer].chksum
    assert packets.rewrite(frame, dst="10.244.1.5", dport=port, smac="02:00:00:00:03:01") == bytes(Ether(bytes(theirs)))


def test_the_builders_build_what_scapy_builds():
    ours = packets.ether("02:00:00:00:00:02", "02:00:00:00:00:01") + packets.ipv4(
        "10.0.1.2", "10.96.0.10", 6, packets.tcp("10.0.1.2", "10.96.0.10", 40000, 80, b"data", seq=1, flags="PA"),
        ident=7, options=b"\x01" * 8)
    theirs = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(
        src="10.0.1.2", dst="10.96.0.10", id=7, options=[IPOption_NOP()] * 8) / TCP(sport=40000, dport=80, seq=1,
                                                                                     flags="PA", window=65535) / b"data"
    assert ours == bytes(theirs)


def test_udp_zero_means_no_checksum_and_a_computed_zero_is_all_ones():
    frame = packets.ether("02:00:00:00:00:02", "02:00:00:00:00:01") + packets.ipv4(
        "10.0.1.2", "10.96.0.10", 17, packets.udp("10.0.1.2", "10.96.0.10", 1, 2, b"xy", no_checksum=True))
    assert str(verify_frame(frame)).endswith("UDP checksum 0x0000 ok (no checksum (0))")
    zero = packets.steer_l4_checksum(frame[:40] + b"\xff\xff" + frame[42:], 0)  # steered: computes to 0
    at = packets.l4_checksum_at(zero)
    assert zero[at:at + 2] == b"\x00\x00"  # what steering asked for ...
    wire = zero[:at] + b"\xff\xff" + zero[at + 2:]  # ... is sent as 0xFFFF
    assert verify_frame(wire).ok
    assert not verify_frame(zero[:at] + b"\x00\x01" + zero[at + 2:]).ok


def test_a_udp_checksum_the_input_carried_must_not_become_zero():
    """0 says "no checksum": alone the frame is valid, but a rewrite that
    turned a checksum into 0 lost it (a result of 0 is sent as 0xFFFF)."""
    before = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.1.2", dst="10.96.0.10")
                   / UDP(sport=1, dport=53) / b"q")
    after = Ether(before)
    after[IP].dst = "10.244.1.5"
    del after[IP].chksum, after[UDP].chksum
    right = bytes(Ether(bytes(after)))
    lost = right[:40] + b"\0\0" + right[42:]
    assert verify_frame(lost).ok  # one frame cannot tell
    verdict = verify_rewrite(before, lost)
    assert [str(p) for p in verdict.problems] == [
        f"UDP checksum 0x0000, expected 0x{Ether(right)[UDP].chksum:04x} (the input had a checksum: 0 would say it has none)"]
    assert verify_rewrite(before, right).ok
    no_checksum = before[:40] + b"\0\0" + before[42:]
    assert verify_rewrite(no_checksum, lost).ok  # none before, none after


def test_a_partial_checksum_must_hold_the_pseudo_header_sum():
    l4 = packets.tcp("10.244.1.5", "10.0.1.2", 8080, 40000, b"reply", flags="PA")
    frame = bytearray(packets.ether("02:00:00:00:00:02", "02:00:00:00:00:01")
                      + packets.ipv4("10.244.1.5", "10.0.1.2", 6, l4))
    partial = pseudo_header_sum(packets.ip("10.244.1.5"), packets.ip("10.0.1.2"), 6, len(l4))
    frame[34 + 16:34 + 18] = struct.pack("!H", partial)
    assert verify_frame(bytes(frame), partial=True).ok
    assert not verify_frame(bytes(frame)).ok  # as a complete checksum it is wrong
    # The source rewritten to the VIP without fixing the pseudo-header sum:
    # exactly what a return path without BPF_F_PSEUDO_HDR leaves behind.
    stale = packets.rewrite(bytes(frame), src="10.96.0.10")[:34] + bytes(frame[34:])
    verdict = verify_frame(stale, partial=True)
    assert [str(p) for p in verdict.problems] == [
        f"TCP checksum 0x{partial:04x}, expected 0x"
        f"{pseudo_header_sum(packets.ip('10.96.0.10'), packets.ip('10.0.1.2'), 6, len(l4)):04x} "
        "(partial: pseudo-header sum)"]


def test_assert_checksums_names_the_frame_the_field_and_both_values():
    good = packets.ether("02:00:00:00:00:02", "02:00:00:00:00:01") + packets.ipv4(
        "10.0.1.2", "10.96.0.10", 17, packets.udp("10.0.1.2", "10.96.0.10", 1, 2, b"abc"))
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    assert_checksums([good])
    with pytest.raises(BadChecksum, match=r"frame 1: IPv4 checksum 0x[0-9a-f]{4} ok; UDP checksum 0x[0-9a-f]{4}, "
                                          r"expected 0x[0-9a-f]{4}"):
        assert_checksums([good, bad])


E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
V6 = IPv6(src="fd00::1", dst="fd00::2")


@pytest.mark.parametrize("frame,reason", [
    (bytes(E / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / UDP() / b"x"), "a first fragment: its upper-layer checksum covers the whole datagram"),
    (bytes(E / IP(src="10.0.0.1", dst="10.0.0.2", proto=47) / b"gre"), "IP protocol 47 has no checksum judged here"),
    (bytes(E / IP(src="10.0.0.1", dst="10.0.0.2") / TCP())[:40], "IP total length 40 is beyond the 26 bytes there"),
    (bytes(E / V6 / IPv6ExtHdrFragment(offset=0, m=1) / TCP() / b"q"), "a first fragment: its upper-layer checksum covers the whole datagram"),
    (bytes(E / V6 / IPv6ExtHdrRouting(type=3, addresses=["fd00::3"], segleft=1) / UDP()), "a type 3 routing header with segments left"),
    (bytes(E / V6 / TCP())[:60], "IPv6 payload length 20 is beyond the 6 bytes there"),
    (bytes(E / IPv6(src="fd00::1", dst="fd00::2", nh=132) / b"sctp"), "IP protocol 132 has no checksum judged here"),
    (bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x8847) / b"mpls"), "ethertype 0x8847 is not parsed here"),
], ids=["v4 first fragment", "gre", "v4 cut short", "v6 first fragment", "rpl routing", "v6 cut short", "sctp", "mpls"])
def test_what_cannot_be_judged_is_said(frame, reason):
    verdict = verify_frame(frame)
    assert verdict.unchecked.startswith(reason) and not verdict.complete, verdict
    with pytest.raises(BadChecksum, match="not checked: "):
        assert_checksums([frame])  # nothing unchecked passes as right


@pytest.mark.parametrize("frame,reason", [
    (bytes(E / ARP(pdst="10.0.0.2")), "ARP carries no checksum"),
    (bytes(E / IP(src="10.0.0.1", dst="10.0.0.2", frag=185) / b"later bytes"), "a later fragment: no upper-layer header in it"),
    (bytes(E / V6 / IPv6ExtHdrFragment(offset=5) / b"later bytes"), "a later fragment: no upper-layer header in it"),
    (bytes(E / IPv6(src="fd00::1", dst="fd00::2", nh=59)), "no next header"),
], ids=["arp", "v4 later fragment", "v6 later fragment", "no next header"])
def test_what_has_no_checksum_is_not_a_gap(frame, reason):
    verdict = verify_frame(frame)
    assert (verdict.nothing, verdict.complete, verdict.ok) == (reason, True, True), verdict
    assert_checksums([frame])


# -- IPv6 ---------------------------------------------------------------------

EXTENSION_CHAINS = [[], [IPv6ExtHdrHopByHop()], [IPv6ExtHdrDestOpt()], [IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt()],
                    [IPv6ExtHdrRouting(addresses=["fd00::3", "fd00::4"], segleft=2)],
                    [IPv6ExtHdrSegmentRouting(addresses=["fd00::9", "fd00::8"], segleft=1)],
                    [IPv6ExtHdrFragment(offset=0, m=0, id=7)]]  # an atomic fragment: the whole datagram


@st.composite
def scapy_frames6(draw):
    """(layer, frame, where the upper layer starts, where the final
    destination is or None) of IPv6 frames scapy builds: TCP, UDP and ICMPv6
    behind every kind of extension header chain, and the tunnels either way."""
    kind = draw(st.sampled_from(["tcp", "udp", "icmpv6"]))
    payload = draw(st.binary(max_size=200))
    l4 = {"tcp": lambda: TCP(sport=draw(st.integers(0, 65535)), dport=80, flags="PA", seq=draw(st.integers(0, 99))),
          "udp": lambda: UDP(sport=draw(st.integers(0, 65535)), dport=53),
          "icmpv6": lambda: ICMPv6EchoRequest(id=draw(st.integers(0, 65535)), data=payload)}[kind]()
    chain = draw(st.sampled_from(EXTENSION_CHAINS))
    ip = IPv6(src=draw(st.sampled_from(["fd00::1", "2001:db8::7"])), dst="fd00:10::10", hlim=draw(st.integers(1, 255)))
    tunnel = draw(st.sampled_from(["none", "6in4", "4in6"])) if kind != "icmpv6" else "none"
    packet = ip
    for header in chain:
        packet = packet / header
    packet = packet / l4 / (payload if kind != "icmpv6" else b"")
    if tunnel == "6in4":
        packet = IP(src="192.0.2.1", dst="192.0.2.2") / packet
    elif tunnel == "4in6":
        packet = IPv6(src="fd00::a", dst="fd00::b") / IP(src="10.0.1.2", dst="10.96.0.10") / l4 / payload
    frame = bytes(E / packet)
    layer = {"tcp": "TCP", "udp": "UDP", "icmpv6": "ICMPv6"}[kind]
    routed = tunnel != "4in6" and any(isinstance(h, (IPv6ExtHdrRouting, IPv6ExtHdrSegmentRouting)) and h.segleft
                                      for h in chain)  # the header's destination is then not the final one
    return ("inner " + layer if tunnel != "none" else layer), frame, tunnel, routed


@settings(max_examples=200)
@given(case=scapy_frames6(), flip=st.integers(0, 2**16))
def test_the_oracle_accepts_what_scapy_builds_over_ipv6_and_rejects_any_flipped_covered_bit(case, flip):
    layer, frame, tunnel, routed = case
    verdict = verify_frame(frame)
    assert verdict.ok and verdict.complete and verdict.findings[-1].layer == layer, verdict
    # A bit flipped in what the upper layer's checksum covers: the segment
    # itself (not the UDP length, which makes it another datagram) and the
    # pseudo-header's addresses. IPv6 has no header checksum: its other
    # fields (traffic class, flow label, hop limit, the extension headers
    # but for the final destination) are covered by nothing, by design.
    parsed = parse(frame)
    net = parsed.innermost
    covered = list(range(net.upper, net.end))
    if net.family == 6 and not routed:
        covered += list(range(net.offset + 8, net.offset + 40))
    if layer.endswith("UDP"):
        covered = [at for at in covered if at not in (net.upper + 4, net.upper + 5)]
    at = covered[flip % len(covered)]
    bad = bytearray(frame)
    bad[at] ^= 1 << (flip % 8)
    assert not verify_frame(bytes(bad)).ok, f"byte {at} flipped and no checksum noticed: {verdict}"


def test_icmpv6_is_summed_over_its_pseudo_header():
    """Code ported from IPv4 forgets it: an ICMPv6 checksum over the message
    alone, as ICMP's, is wrong."""
    frame = bytearray(bytes(E / V6 / ICMPv6EchoRequest(id=7, seq=1, data=b"ping")))
    at = 14 + 40 + 2
    frame[at:at + 2] = b"\0\0"
    frame[at:at + 2] = struct.pack("!H", checksum(bytes(frame[14 + 40:])))  # ICMPv4's rule
    (problem,) = verify_frame(bytes(frame)).problems
    assert (problem.layer, problem.expected) == ("ICMPv6", Ether(bytes(E / V6 / ICMPv6EchoRequest(id=7, seq=1, data=b"ping")))[ICMPv6EchoRequest].cksum)


def test_udp_zero_over_ipv6_is_wrong_unless_a_tunnel_port_may_send_it():
    vxlan = bytes(E / V6 / UDP(sport=40000, dport=4789, chksum=0) / b"inner frame")
    (finding,) = verify_frame(vxlan).findings
    assert str(finding) == (f"UDP checksum 0x0000, expected 0x{Ether(bytes(E / V6 / UDP(sport=40000, dport=4789) / b'inner frame'))[UDP].chksum:04x}"
                            " (0 is not allowed over IPv6 (RFC 8200))")
    assert verify_frame(vxlan, udp6_zero_ports={4789}).ok
    assert not verify_frame(vxlan, udp6_zero_ports={6081}).ok
    # A rewrite that leaves the input's 0 alone did nothing wrong itself.
    moved = bytes(E / IPv6(src="fd00::1", dst="fd00::99") / UDP(sport=40000, dport=4789, chksum=0) / b"inner frame")
    assert verify_rewrite(vxlan, moved).ok
    assert not verify_rewrite(bytes(E / V6 / UDP(sport=40000, dport=4789) / b"inner frame"), moved).ok


def test_the_ipv6_builders_build_what_scapy_builds():
    chain = (packets.extension(0), (43, bytes([4, 0, 0, 0, 0, 0]) + packets.ip("fd00:96::10")), packets.extension(60))
    ours = packets.ether("02:00:00:00:00:02", "02:00:00:00:00:01", packets.ETH_P_IPV6) + packets.ipv6(
        "fd00:1::2", "fd00:96::10", 17, packets.udp("fd00:1::2", "fd00:96::10", 40000, 53, b"query"), extensions=chain,
        hop_limit=9)
    theirs = (Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / IPv6(src="fd00:1::2", dst="fd00:96::10", hlim=9)
              / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0" * 4)])
              / IPv6ExtHdrSegmentRouting(addresses=["fd00:96::10"], segleft=0, lastentry=0)
              / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0" * 4)]) / UDP(sport=40000, dport=53) / b"query")
    assert ours == bytes(theirs)
    echo = packets.icmp6_echo("fd00:1::2", "fd00:53::1", 7, 1, b"ping")
    assert echo == bytes(ICMPv6EchoRequest(id=7, seq=1, data=b"ping", cksum=Ether(bytes(
        Ether(dst="02:00:00:00:00:02") / IPv6(src="fd00:1::2", dst="fd00:53::1") / ICMPv6EchoRequest(id=7, seq=1, data=b"ping")))[ICMPv6EchoRequest].cksum))


@settings(max_examples=100)
@given(case=scapy_frames6(), port=st.integers(1, 65535))
def test_the_nat_model_is_scapys_full_recomputation_over_ipv6(case, port):
    layer, frame, tunnel, routed = case
    if tunnel != "none" or layer == "ICMPv6" or routed:
        return
    theirs = Ether(frame)
    l4 = theirs[TCP] if layer == "TCP" else theirs[UDP]
    theirs[IPv6].dst, l4.dport = "fd00:244::5", port
    del l4.chksum
    assert packets.rewrite(frame, dst="fd00:244::5", dport=port) == bytes(Ether(bytes(theirs)))
