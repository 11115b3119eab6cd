"""Run by test_lab.py: a failing test must leave nothing behind and write pcaps."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

pytestmark = pytest.mark.kernel


def test_fails_after_sending(pair_lab):
    left, right = pair_lab.endpoint("left", "eth0"), pair_lab.endpoint("right", "eth0")
    with pair_lab.capture("right", "eth0", lambda p: UDP in p) as cap:
        pair_lab.send("left", "eth0", Ether(src=left.mac, dst=right.mac) / IP(src=left.ip, dst=right.ip)
                      / UDP(sport=1234, dport=4321) / b"evidence")
        cap.wait(1)
    pair_lab.popen("right", ["sleep", "300"])
    raise AssertionError("deliberate failure")
