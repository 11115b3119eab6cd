"""packet_inspect: one exact ring-buffer event per IPv4 packet, in order,
through test-run, the lab and the command line."""
import pytest

from bpflab.libbpf import BpfObject
from bpflab.loaders.objects import object_path
from bpflab.loaders.packet_inspect import Packet, PacketInspect, open_stream
from tests import model
from tests.counting import FRAMES, MIX, cli_json, lab_frames, run_all
from tests.frame_mix import A, B

pytestmark = pytest.mark.kernel


@pytest.fixture
def loaded():
    with BpfObject(object_path('packet_inspect')) as obj:
        yield obj


def test_inspect_emits_one_exact_event_per_ipv4_packet_in_order(loaded):
    stream = open_stream(loaded)
    try:
        run_all(loaded, "packet_inspect", MIX)
        events = stream.drain()
    finally:
        stream.close()
    expected = [Packet(ip.src, ip.dst, ip.proto) for f in FRAMES if (ip := model.ipv4(f))]
    assert events == expected
    assert len(events) == 17
    assert events[0].line() == "10.11.0.1 -> 10.11.0.2 ICMP"
    assert events[5].line() == "10.11.0.1 -> 192.0.2.7 GRE"


def test_inspect_through_the_lab(pair_lab, attach):
    inspect = attach(PacketInspect, "eth0", netns=pair_lab.netns("right"), mode="native")
    pair_lab.send("left", "eth0", [f for _, f in lab_frames(pair_lab)])
    events = list(inspect.stream.events(timeout=0.5))
    assert events == [Packet(ip.src, ip.dst, ip.proto) for f in FRAMES if (ip := model.ipv4(f))]


def test_inspect_cli_json(pair_lab):
    events = cli_json(pair_lab, "packet_inspect", "--count", "17")
    assert [(e["src"], e["dst"], e["proto"]) for e in events] == [
        (ip.src, ip.dst, ip.proto) for f in FRAMES if (ip := model.ipv4(f))]
    assert events[0] == {"src": A, "dst": B, "proto": 1, "proto_name": "ICMP"}
