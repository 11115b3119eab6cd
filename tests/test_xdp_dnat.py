"""xdp_dnat: exact rewrites and checksums via test-run for hand-picked
frames, with the FIB's wiring (the property tests at the checksum edges are
in test_xdp_dnat_checksums.py)."""
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from bpflab.lab.checksums import ones_sum
from bpflab.loaders.services import Service
from tests.frame_mix import ip_ends_early
from tests.xdp_dnat_frames import (
    BACKEND_IP,
    BACKEND_MAC,
    CLIENT_IP,
    CLIENT_MAC,
    DNS,
    HTTP,
    LB_IN_MAC,
    LB_OUT_MAC,
    VIP,
    client_frame,
    dnat_runner,
    rewritten,
    verdict_delta,
)

pytestmark = pytest.mark.kernel


@pytest.fixture
def runner(dnat_lab):
    with dnat_runner(dnat_lab) as r:
        yield r


def assert_rewrite(runner, frame: bytes, service: Service) -> Ether:
    before = runner.verdicts()
    result = runner.run(frame)
    assert result.action == "XDP_REDIRECT"
    assert result.data == rewritten(frame, service), (
        f"\ngot:      {Ether(result.data).show(dump=True)}\nexpected: {Ether(rewritten(frame, service)).show(dump=True)}")
    assert verdict_delta(before, runner.verdicts()) == {"rewritten": 1, "redirected": 1}
    return Ether(result.data)


def test_tcp_syn_is_rewritten_with_fib_macs_and_exact_checksums(runner):
    frame = bytes(client_frame(TCP(sport=40000, dport=80, flags="S", seq=1)))
    out = assert_rewrite(runner, frame, HTTP)
    assert (out.src, out.dst) == (LB_OUT_MAC, BACKEND_MAC)
    assert (out[IP].src, out[IP].dst, out[TCP].sport, out[TCP].dport) == (CLIENT_IP, BACKEND_IP, 40000, 8080)
    assert out[IP].ttl == 64  # a load balancer, not a router hop


def test_udp_with_payload_and_ip_options(runner):
    frame = bytes(client_frame(UDP(sport=5000, dport=53), options=[IPOption_RR(routers=["0.0.0.0"] * 3)],
                               payload=b"query"))
    out = assert_rewrite(runner, frame, DNS)
    assert out[IP].ihl == 9 and out[UDP].dport == 5353


def test_udp_checksum_zero_stays_zero(runner):
    p = client_frame(UDP(sport=5000, dport=53), payload=b"no checksum")
    p[UDP].chksum = 0
    out = assert_rewrite(runner, bytes(p), DNS)
    assert out[UDP].chksum == 0


def payload_word_for(frame_builder, service_after: Service | None) -> bytes:
    """Two payload bytes that make the L4 one's complement sum 0xFFFF, i.e.
    a computed checksum of 0: before the rewrite (service_after None) or
    after it."""
    probe = Ether(bytes(frame_builder(b"\0\0")))
    if service_after is not None:
        probe = Ether(rewritten(bytes(probe), service_after))
    ip = probe[IP]
    l4 = bytes(ip.payload)
    l4 = l4[:6] + b"\0\0" + l4[8:] if UDP in probe else l4[:16] + b"\0\0" + l4[18:]
    pseudo = struct.pack("!4s4sBBH", bytes(ip)[12:16], bytes(ip)[16:20], 0, ip.proto, len(l4))
    s = ones_sum(pseudo + l4)
    return (0xFFFF - s).to_bytes(2, "big")


def test_udp_result_zero_is_sent_as_ffff(runner):
    def build(word):
        return client_frame(UDP(sport=5000, dport=53), payload=word + b"pad!")

    frame = bytes(build(payload_word_for(build, DNS)))
    out = assert_rewrite(runner, frame, DNS)
    assert out[UDP].chksum == 0xFFFF


def tcp_carrying(word: bytes) -> Ether:
    return client_frame(TCP(sport=1234, dport=80, flags="PA"), payload=word + b"data")


def test_tcp_result_zero_is_sent_as_zero(runner):
    frame = bytes(tcp_carrying(payload_word_for(tcp_carrying, HTTP)))
    out = assert_rewrite(runner, frame, HTTP)
    assert out[TCP].chksum == 0x0000


def test_tcp_whose_original_checksum_is_zero(runner):
    frame = bytes(tcp_carrying(payload_word_for(tcp_carrying, None)))
    assert Ether(frame)[TCP].chksum == 0x0000
    assert_rewrite(runner, frame, HTTP)


NOT_SERVICE = [
    ("tcp to another port of the vip", client_frame(TCP(dport=81)), "not_service"),
    ("udp to the tcp service port", client_frame(UDP(dport=80)), "not_service"),
    ("tcp to another address", client_frame(TCP(dport=80), dst="10.96.0.11"), "not_service"),
    ("icmp to the vip", client_frame(ICMP()), "not_service"),
    ("ipv6", Ether(src=CLIENT_MAC, dst=LB_IN_MAC) / IPv6() / TCP(dport=80), "not_service"),
    ("arp", Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=VIP), "not_service"),
    ("vlan-tagged service frame", Ether(src=CLIENT_MAC, dst=LB_IN_MAC) / Dot1Q(vlan=5)
     / IP(src=CLIENT_IP, dst=VIP) / TCP(dport=80), "not_service"),
    ("tcp header cut short", bytes(client_frame(TCP(dport=80)))[:14 + 20 + 10], "malformed"),
    ("ihl 4", bytes(client_frame(TCP(dport=80)))[:14] + b"\x44" + bytes(client_frame(TCP(dport=80)))[15:], "malformed"),
    # A 60-byte frame whose IP packet ends before (or inside) the L4 header;
    # the padding holds a perfect header for the service. Not a header.
    ("tcp header only in the padding", ip_ends_early(bytes(client_frame(TCP(dport=80))), 20), "malformed"),
    ("tcp header half in the padding", ip_ends_early(bytes(client_frame(TCP(dport=80))), 30), "malformed"),
    ("udp header only in the padding", ip_ends_early(bytes(client_frame(UDP(dport=53))), 20), "malformed"),
    ("tcp options in the padding", ip_ends_early(bytes(client_frame(TCP(dport=80, options=[("MSS", 1460)]))), 40),
     "malformed"),
    ("udp length beyond tot_len", ip_ends_early(bytes(client_frame(UDP(dport=53), payload=b"0123456789")), 30),
     "malformed"),
]


@pytest.mark.parametrize("label,frame,verdict", NOT_SERVICE, ids=[c[0] for c in NOT_SERVICE])
def test_everything_else_passes_byte_identical(runner, label, frame, verdict):
    frame = bytes(frame)
    before = runner.verdicts()
    result = runner.run(frame)
    assert (result.action, result.data) == ("XDP_PASS", frame)
    assert verdict_delta(before, runner.verdicts()) == {verdict: 1}


def test_fragments_are_never_rewritten(runner):
    packet = IP(src=CLIENT_IP, dst=VIP, id=99) / UDP(sport=5000, dport=53) / bytes(2000)
    for frag in fragment(packet, 1000):
        frame = bytes(Ether(src=CLIENT_MAC, dst=LB_IN_MAC) / frag)
        before = runner.verdicts()
        result = runner.run(frame)
        assert (result.action, result.data) == ("XDP_PASS", frame)
        assert verdict_delta(before, runner.verdicts()) == {"fragment": 1}
