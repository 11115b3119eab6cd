"""xdp_dnat's return path (dnat_return, a tc program) through test-run:
exact bytes of every rewritten reply, against the same independent model as
the forward direction, and on 6.11+ with a CHECKSUM_COMPLETE skb whose
skb->csum the kernel checks after the program ran."""
import pytest
from scapy.layers.inet import ICMP, TCP, UDP, IPOption_NOP, IPOption_RR, fragment
from scapy.layers.l2 import Ether

from bpflab.host import kernel
from bpflab.host.paths import BUILD_DIR
from bpflab.lab.checksums import checksum, pseudo_header_sum, verify_frame
from bpflab.loaders.services import Service
from tests.frame_mix import ip_ends_early
from tests.xdp_dnat_frames import (
    BACKEND_IP,
    CLIENT_IP,
    DNS,
    HTTP,
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    VIP,
    backend_frame,
    replied,
    return_runner,
    verdict_delta,
)

pytestmark = pytest.mark.kernel
CHECKSUM_COMPLETE = kernel.has("skb_checksum_complete_test_run")


@pytest.fixture
def runner():
    with return_runner() as r:
        # The connections the NOT_A_REPLY frames resemble exist.
        for service, l4 in ((HTTP, TCP(sport=8080, dport=40000)), (DNS, UDP(sport=5353, dport=40000))):
            r.connect(bytes(backend_frame(l4)), service)
        yield r


def assert_reply_rewritten(runner, frame: bytes, service) -> Ether:
    runner.connect(frame, service)
    want = replied(frame, service)
    for complete in (False, True) if CHECKSUM_COMPLETE else (False,):
        before = runner.verdicts()
        result = runner.run(frame, complete=complete)
        assert result.retval == TC_ACT_REDIRECT
        assert result.data == want, (f"complete={complete}\ngot:      {Ether(result.data).show(dump=True)}\n"
                                     f"expected: {Ether(want).show(dump=True)}")
        assert verdict_delta(before, runner.verdicts()) == {"reply_rewritten": 1}
    assert verify_frame(want).ok
    return Ether(want)


def udp_reply_computing_zero(payload_len: int = 6) -> bytes:
    """A UDP reply whose checksum, once rewritten to come from the VIP,
    computes to 0 (so it must be sent as 0xFFFF): two payload bytes chosen
    to make the rewritten datagram's one's complement sum 0xFFFF."""
    probe = bytes(backend_frame(UDP(sport=5353, dport=40000), payload=bytes(payload_len)))
    after = bytearray(replied(probe, DNS))
    udp_at = 14 + 20
    after[udp_at + 6:udp_at + 8] = b"\0\0"
    pseudo = pseudo_header_sum(bytes(after[26:30]), bytes(after[30:34]), 17, len(after) - udp_at)
    word = checksum(bytes(after[udp_at:]), pseudo)  # adding this word makes the sum 0xFFFF
    frame = bytearray(probe)
    frame[udp_at + 8:udp_at + 10] = word.to_bytes(2, "big")
    return bytes(backend_frame(UDP(sport=5353, dport=40000), payload=bytes(frame[udp_at + 8:])))


def test_tcp_reply_comes_from_the_vip_with_exact_checksums(runner):
    frame = bytes(backend_frame(TCP(sport=8080, dport=40000, flags="SA", seq=7, ack=2), payload=b"hello"))
    out = assert_reply_rewritten(runner, frame, HTTP)
    assert (out["IP"].src, out["IP"].dst, out[TCP].sport, out[TCP].dport) == (VIP, CLIENT_IP, 80, 40000)
    assert out["IP"].ttl == 64


def test_udp_reply(runner):
    out = assert_reply_rewritten(runner, bytes(backend_frame(UDP(sport=5353, dport=40000), payload=b"answer")), DNS)
    assert (out["IP"].src, out[UDP].sport) == (VIP, 53)


def test_udp_reply_without_checksum_stays_without(runner):
    p = backend_frame(UDP(sport=5353, dport=40000), payload=b"no checksum")
    p[UDP].chksum = 0
    out = assert_reply_rewritten(runner, bytes(p), DNS)
    assert out[UDP].chksum == 0


def test_udp_reply_computing_zero_is_sent_as_ffff(runner):
    out = assert_reply_rewritten(runner, udp_reply_computing_zero(), DNS)
    assert out[UDP].chksum == 0xFFFF


@pytest.mark.parametrize("options", [[IPOption_NOP()] * 4, [IPOption_RR(routers=["0.0.0.0"] * 9)]],
                         ids=["ihl 6", "ihl 15"])
def test_reply_with_ip_options(runner, options):
    frame = bytes(backend_frame(TCP(sport=8080, dport=40001, flags="A"), options=options, payload=b"x" * 33))
    out = assert_reply_rewritten(runner, frame, HTTP)
    assert out["IP"].ihl == (6 if len(options) == 4 else 15)


def test_a_reply_of_no_connection_passes_untouched(runner):
    """The return path is keyed by the connection: the backend and the
    service alone are not enough."""
    frame = bytes(backend_frame(TCP(sport=8080, dport=40003, flags="SA")))
    runner.connect(bytes(backend_frame(TCP(sport=8080, dport=40004, flags="SA"))), HTTP)
    before = runner.verdicts()
    result = runner.run(frame)
    assert (result.retval, result.data) == (TC_ACT_OK, frame)
    assert verdict_delta(before, runner.verdicts()) == {}


def test_one_backend_serves_two_services(runner):
    """Replies of two connections to the same backend port come back from
    the VIP each connection addressed."""
    other = Service.to("10.96.0.11", 8000, "tcp", BACKEND_IP, 8080)
    first = bytes(backend_frame(TCP(sport=8080, dport=40000, flags="A"), payload=b"one"))
    second = bytes(backend_frame(TCP(sport=8080, dport=40002, flags="A"), payload=b"two"))
    assert assert_reply_rewritten(runner, first, HTTP)["IP"].src == VIP
    out = assert_reply_rewritten(runner, second, other)
    assert (out["IP"].src, out[TCP].sport) == ("10.96.0.11", 8000)


NOT_A_REPLY = [
    ("from another backend port", backend_frame(TCP(sport=8081, dport=40000))),
    ("udp from the tcp backend port", backend_frame(UDP(sport=8080, dport=40000))),
    ("from another address", backend_frame(TCP(sport=8080, dport=40000), src="10.244.1.6")),
    ("icmp from the backend", backend_frame(ICMP())),
    ("tcp header cut short", bytes(backend_frame(TCP(sport=8080, dport=40000)))[:14 + 20 + 10]),
    # tot_len ends the packet after the IP header (or inside the L4 header);
    # the padding of a 60-byte frame holds what looks like the backend's
    # TCP/UDP header: not a header.
    ("tcp header only in the padding", ip_ends_early(bytes(backend_frame(TCP(sport=8080, dport=40000))), 20)),
    ("tcp header half in the padding", ip_ends_early(bytes(backend_frame(TCP(sport=8080, dport=40000))), 30)),
    ("udp header only in the padding", ip_ends_early(bytes(backend_frame(UDP(sport=5353, dport=40000))), 20)),
]


@pytest.mark.parametrize("label,frame", NOT_A_REPLY, ids=[c[0] for c in NOT_A_REPLY])
def test_everything_else_passes_untouched(runner, label, frame):
    frame = bytes(frame)
    before = runner.verdicts()
    result = runner.run(frame)
    assert (result.retval, result.data) == (TC_ACT_OK, frame)
    assert verdict_delta(before, runner.verdicts()) == {}


def test_fragments_of_a_reply_pass_untouched(runner):
    from scapy.layers.inet import IP

    packet = IP(src=BACKEND_IP, dst=CLIENT_IP, id=5) / UDP(sport=5353, dport=40000) / bytes(1800)
    for frag in fragment(packet, 1000):
        frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / frag)
        result = runner.run(frame)
        assert (result.retval, result.data) == (TC_ACT_OK, frame)


@pytest.mark.since_kernel("skb_checksum_complete_test_run")
def test_the_kernel_catches_a_stale_skb_csum():
    """The oracle itself: a program that changes a byte without telling
    skb->csum is refused with EBADMSG in CHECKSUM_COMPLETE mode."""
    import errno

    from bpflab.libbpf import BpfObject

    # tests/bpf/stale_csum.bpf.c: poke() stores a byte without BPF_F_RECOMPUTE_CSUM.
    with BpfObject(BUILD_DIR / "tests" / "stale_csum.bpf.o") as obj:
        frame = bytes(backend_frame(UDP(sport=1, dport=2), payload=b"0123456789"))
        assert obj.program("poke").test_run(frame).retval == 0
        with pytest.raises(OSError) as info:
            obj.program("poke").test_run(frame, flags=4)
        assert info.value.errno == errno.EBADMSG
