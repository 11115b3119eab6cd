"""packet_counter: packets per IP protocol, exact, through test-run, two
racing CPUs, the lab and the command line."""
import pytest
from scapy.layers.inet import IP

from bpflab.host.waits import settle
from bpflab.libbpf import BpfObject
from bpflab.loaders.objects import object_path
from bpflab.loaders.packet_counter import PacketCounter, read_counts
from tests import model
from tests.counting import EXPECTED_COUNTS, FRAMES, MIX, RACE_KEYS, cli_json, lab_frames, race_on_two_cpus, run_all
from tests.frame_mix import A, B, eth

pytestmark = pytest.mark.kernel


def test_the_hand_written_expectations_agree_with_the_model():
    assert model.protocol_counts(FRAMES) == EXPECTED_COUNTS


@pytest.fixture
def loaded():
    with BpfObject(object_path('packet_counter')) as obj:
        yield obj


def test_counter_counts_exactly_the_ipv4_packets_of_the_mix(loaded):
    run_all(loaded, "packet_counter", MIX)
    assert read_counts(loaded) == EXPECTED_COUNTS


def test_counter_loses_no_count_across_cpus(loaded):
    frame = bytes(eth() / IP(src=A, dst=B, proto=132) / bytes(8))
    race_on_two_cpus(loaded.program("packet_counter"), frame, RACE_KEYS)
    assert read_counts(loaded) == {132: 2 * RACE_KEYS}


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_counter_through_the_lab(pair_lab, attach, mode):
    counter = attach(PacketCounter, "eth0", netns=pair_lab.netns("right"), mode=mode)
    pair_lab.send("left", "eth0", [f for _, f in lab_frames(pair_lab)])
    assert settle(counter.counts, EXPECTED_COUNTS) == EXPECTED_COUNTS


def test_counter_cli_json(pair_lab):
    tables = cli_json(pair_lab, "packet_counter", "--interval", "1", "--count", "1")
    assert tables == [{str(k): v for k, v in sorted(EXPECTED_COUNTS.items())}]
