"""The lab, dual-stack (lab.topology.pair6): IPv6 addresses, routes and
permanent neighbour entries, so nothing waits on neighbour discovery; frames
addressed from the topology in either family; and the checksum rule judging
IPv6 frames as it does IPv4 ones, the receiving kernel agreeing."""
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment

from bpflab.lab import pair6
from bpflab.lab.frames import towards_peer

pytestmark = pytest.mark.kernel


def test_both_families_reach_across_without_neighbour_discovery(lab_factory):
    lab = lab_factory("pair6")
    with lab.capture("right", "eth0", lambda p: p.haslayer(IPv6) and p[IPv6].nh == 58 and 133 <= p.lastlayer().type <= 137) as nd:
        for family, peer in (("-6", "fd00:11::2"), ("-4", "10.11.0.2")):
            ping = lab.run("left", ["ping", family, "-c", "1", "-W", "2", peer])
            assert ping.returncode == 0, ping.stdout + ping.stderr
        assert nd.wait(1, timeout=0.2) == []  # no solicitation or advertisement: the entries are permanent


def test_towards_peer_addresses_either_family_from_the_topology(lab_factory, assert_frame_arrives):
    lab = lab_factory("pair6")
    frame = towards_peer(lab.topology, "left", family=6) / UDP(sport=4000, dport=9) / b"six"
    assert (frame[IPv6].src, frame[IPv6].dst, frame.src, frame.dst) == ("fd00:11::1", "fd00:11::2",
                                                                         "02:00:00:00:01:01", "02:00:00:00:01:02")
    assert_frame_arrives(lab, frame, src=("left", "eth0"), dst=("right", "eth0"),
                         match=lambda p: p.haslayer(UDP) and p[UDP].dport == 9, expect={"IPv6.dst": "fd00:11::2"})
    assert towards_peer(lab.topology, "left", dst="fd00:96::10")[IPv6].src == "fd00:11::1"
    with pytest.raises(ValueError, match="no IPv6 addresses"):
        towards_peer(lab_factory("pair").topology, "left", family=6)


def wrong_udp6():
    frame = bytearray(bytes(towards_peer(pair6(), "left", family=6) / UDP(sport=4000, dport=9) / b"six"))
    frame[-1] ^= 0x40  # the payload no longer matches the checksum
    return bytes(frame)


@pytest.mark.expect_bad_checksums("sends a wrong UDP checksum over IPv6 on purpose")
def test_the_checksum_rule_and_the_kernel_judge_ipv6(lab_factory):
    lab = lab_factory("pair6")
    with lab.capture("right", "eth0", lambda p: p.haslayer(UDP) and p[UDP].dport == 9) as cap:
        lab.send("left", "eth0", wrong_udp6())
        assert len(cap.wait(1)) == 1
    (problem, counted) = lab.checksum_problems()
    assert problem.startswith("a frame captured at right/eth0: UDP checksum 0x") and ", expected 0x" in problem
    assert counted == "right: Udp6 InCsumErrors = 1"  # the receiving kernel says the same


@pytest.mark.expect_unchecked("a first fragment crosses the link on purpose")
def test_a_frame_the_rule_cannot_judge_is_named_unless_the_test_expects_it(lab_factory):
    lab = lab_factory("pair6")
    first = towards_peer(lab.topology, "left", family=6) / IPv6ExtHdrFragment(m=1, id=7) / UDP(dport=9) / b"part"
    with lab.capture("right", "eth0", lambda p: p.haslayer(IPv6ExtHdrFragment)) as cap:
        lab.send("left", "eth0", first)
        assert len(cap.wait(1)) == 1
    assert lab.checksum_problems(unchecked=False) == []
    (unjudged,) = lab.checksum_problems()
    assert "not checked: a first fragment: its upper-layer checksum covers the whole datagram" in unjudged


@pytest.mark.harness
def test_the_rule_fails_a_test_for_what_it_cannot_judge_unless_the_test_says_so():
    from tests.clitools import run_pytest

    result = run_pytest("-q", "-rf", str(Path(__file__).with_name("lab_scenarios") / "scenario_checksum_rule.py"))
    assert result.returncode == 1, result.stdout
    assert "2 failed, 1 passed" in result.stdout
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    assert [line.split("::")[1].split()[0] for line in failed] == ["test_bad_ipv6_checksum", "test_unjudged_frame"]
    assert "a frame captured at right/eth0: UDP checksum 0x" in result.stdout
    assert "not checked: a first fragment: its upper-layer checksum covers the whole datagram" in result.stdout
