"""xdp_pong's tests, written as anyone testing their own program would: only
the public API (bpflab.testing) and the fixtures bpflab's pytest plugin
brings. XDP_PONG_OBJ says where the object is (default: this repository's
build/examples/xdp_pong.bpf.o, from `make`)."""
import os
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from bpflab.testing import (
    AnyProgram,
    Target,
    assert_checksums,
    check_checksums,
    corpus_problems,
    fill_map,
    towards_peer,
)

OBJ = Path(os.environ.get("XDP_PONG_OBJ", Path(__file__).resolve().parents[2] / "build/examples/xdp_pong.bpf.o"))
ME, PEER = "10.11.0.2", "10.11.0.1"
pytestmark = pytest.mark.kernel


@pytest.fixture
def pong():
    """xdp_pong test-run, answering for ME."""
    with Target(OBJ) as target:
        fill_map(target.obj, "pong_addrs", [{"key": ME, "value": 1}])
        yield target


def request(dst=ME, **icmp) -> bytes:
    return bytes(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02") / IP(src=PEER, dst=dst, ttl=17)
                 / ICMP(type=8, id=7, seq=1, **icmp) / b"are you there?")


def reply_to(frame: bytes) -> bytes:
    """What a correct answer is, built by scapy: swapped, type 0, TTL 64,
    every checksum recomputed from scratch."""
    p = Ether(frame)
    p.src, p.dst = p.dst, p.src
    p[IP].src, p[IP].dst, p[IP].ttl = p[IP].dst, p[IP].src, 64
    p[ICMP].type = 0
    del p[IP].chksum, p[ICMP].chksum
    return bytes(Ether(bytes(p)))


def test_an_echo_request_is_answered_exactly(pong):
    frame = request()
    outcome = pong.run(frame)
    assert outcome.verdict == "XDP_TX"
    assert outcome.data == reply_to(frame)
    assert_checksums([outcome.data])


@pytest.mark.parametrize("frame", [request(dst="10.11.0.99"), request(code=1),
                                   bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=PEER, dst=ME) / ICMP(type=0)),
                                   bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=PEER, dst=ME) / UDP(dport=7))],
                         ids=["not my address", "code 1", "a reply", "udp"])
def test_everything_else_passes_untouched(pong, frame):
    assert (pong.run(frame).verdict, pong.run(frame).data) == ("XDP_PASS", frame)


def test_its_checksums_hold_at_every_edge(pong):
    report = check_checksums(pong, examples=300)
    assert report.failure is None, str(report.failure)
    assert report.edges["icmp"].checked > 0  # the frames it answers were judged


def test_ping_across_the_lab_is_answered_by_xdp(pair_lab, attach):
    """The right node's kernel never sees the requests: XDP answers them."""
    prog = attach(AnyProgram, OBJ, "eth0", netns=pair_lab.netns("right"), mode="generic",
                  maps={"pong_addrs": [{"key": ME, "value": 1}]})
    ping = pair_lab.run("left", ["ping", "-c", "3", "-i", "0.2", "-W", "2", ME])
    assert ping.returncode == 0, ping.stdout
    assert sum(prog.dump("pong_replies")[0]["value"]) == 3
    assert pair_lab.snmp("right")["Icmp"]["InEchos"] == 0
    assert towards_peer(pair_lab.topology, "left")[IP].dst == ME


def test_the_verifier_still_rejects_the_mistakes():
    """must_reject/: an unchecked read the verifier refuses, and its twin it accepts."""
    assert corpus_problems(Path(__file__).with_name("must_reject")) == []
