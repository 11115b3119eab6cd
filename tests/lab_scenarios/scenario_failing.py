"""Run by test_lab.py: a failing test must leave nothing behind and write pcaps."""
import pytest
from scapy.layers.inet import UDP

from bpflab.lab.frames import towards_peer

pytestmark = pytest.mark.kernel


def test_fails_after_sending(pair_lab):
    with pair_lab.capture("right", "eth0", lambda p: UDP in p) as cap:
        pair_lab.send("left", "eth0", towards_peer(pair_lab.topology, "left") / UDP(sport=1234, dport=4321) / b"evidence")
        cap.wait(1)
    pair_lab.popen("right", ["sleep", "300"])
    raise AssertionError("deliberate failure")
