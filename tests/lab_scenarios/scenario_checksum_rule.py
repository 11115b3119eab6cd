"""Run by test_lab_ipv6.py: the checksum rule fails a test whose lab
captured a bad checksum or a frame it could not judge, unless the test says
it means to."""
import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6ExtHdrFragment

from bpflab.lab.frames import towards_peer

pytestmark = pytest.mark.kernel


def send(lab, frame) -> None:
    with lab.capture("right", "eth0", lambda p: p.haslayer(UDP) or p.haslayer(IPv6ExtHdrFragment)) as cap:
        lab.send("left", "eth0", frame)
        cap.wait(1)


def bad_udp6(lab) -> bytes:
    frame = bytearray(bytes(towards_peer(lab.topology, "left", family=6) / UDP(sport=4000, dport=9) / b"six"))
    frame[-1] ^= 1
    return bytes(frame)


def first_fragment(lab):
    return towards_peer(lab.topology, "left", family=6) / IPv6ExtHdrFragment(m=1, id=9) / UDP(dport=9) / b"part"


def test_bad_ipv6_checksum(lab_factory):
    lab = lab_factory("pair6")
    send(lab, bad_udp6(lab))


def test_unjudged_frame(lab_factory):
    lab = lab_factory("pair6")
    send(lab, first_fragment(lab))


@pytest.mark.expect_unchecked("on purpose")
def test_unjudged_frame_expected(lab_factory):
    lab = lab_factory("pair6")
    send(lab, first_fragment(lab))
