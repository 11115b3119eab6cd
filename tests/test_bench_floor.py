"""The bench's floor program (bench/bpf/floor_dnat.bpf.c) does the DNAT it
stands for: xdp_dnat's figures are read against it, so a floor that
rewrote less (a checksum left stale, a port not written) would flatter
xdp_dnat. The next-hop variant runs in test-run without a lab; the output
is compared with the frame scapy builds for the backend, checksums computed
by scapy. The forward-only program (the lab's ceiling) must still write the
next hop's MACs and redirect."""
import ctypes
import socket

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from bpflab.bench.datapath import Nexthop
from bpflab.libbpf import BpfObject
from bpflab.loaders.objects import BUILD_DIR
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.services import BackendSlot, ServiceKey, service_key

pytestmark = pytest.mark.kernel

XDP_PASS, XDP_REDIRECT = 2, 4
CLIENT, VIP, BACKEND = "10.0.0.1", "10.96.0.10", "10.244.1.5"
SMAC, DMAC, EGRESS = "02:00:00:00:01:01", "02:00:00:00:02:02", 7
PAYLOAD = b"floor" * 4


@pytest.fixture(scope="module")
def floor():
    obj = BpfObject(BUILD_DIR / "bench" / "floor_dnat.bpf.o")
    services = obj.map("services").bind(ServiceKey, BackendSlot)
    for proto in ("udp", "tcp"):
        services.update(service_key(VIP, 53, proto), BackendSlot(ip_be32(BACKEND), socket.htons(5353), 1))
    obj.map("nexthop").bind(ctypes.c_uint32, Nexthop).update(0, Nexthop.of(EGRESS, SMAC, DMAC))
    yield obj
    obj.close()


def frame(l4, dst=VIP) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=CLIENT, dst=dst, id=7, ttl=64)
                 / l4 / PAYLOAD)


@pytest.mark.parametrize("l4, rewritten", [
    (UDP(sport=4000, dport=53), UDP(sport=4000, dport=5353)),
    (TCP(sport=4000, dport=53, seq=1, flags="S"), TCP(sport=4000, dport=5353, seq=1, flags="S")),
], ids=["udp", "tcp"])
def test_the_next_hop_floor_rewrites_like_a_dnat(floor, l4, rewritten):
    result = floor.program("floor_dnat_nexthop").test_run(frame(l4))
    assert result.retval == XDP_REDIRECT
    expected = bytes(Ether(src=SMAC, dst=DMAC) / IP(src=CLIENT, dst=BACKEND, id=7, ttl=64) / rewritten / PAYLOAD)
    assert result.data.hex() == expected.hex()


def test_a_udp_frame_without_a_checksum_keeps_none(floor):
    result = floor.program("floor_dnat_nexthop").test_run(frame(UDP(sport=4000, dport=53, chksum=0)))
    assert result.retval == XDP_REDIRECT
    assert Ether(result.data)[UDP].chksum == 0 and Ether(result.data)[UDP].dport == 5353


def test_the_forward_floor_writes_the_macs_and_nothing_else(floor):
    """floor_forward is the lab's ceiling: it must still do what any forwarder
    does (the next hop's MACs, the redirect), so its figure is a real one."""
    sent = frame(UDP(sport=4000, dport=53))
    result = floor.program("floor_forward").test_run(sent)
    assert result.retval == XDP_REDIRECT
    macs = bytes.fromhex(DMAC.replace(":", "") + SMAC.replace(":", ""))
    assert result.data.hex() == (macs + sent[12:]).hex()


def test_the_forward_floor_without_a_next_hop_passes(floor):
    with BpfObject(BUILD_DIR / "bench" / "floor_dnat.bpf.o") as obj:  # its next-hop entry all zero
        sent = frame(UDP(sport=4000, dport=53))
        result = obj.program("floor_forward").test_run(sent)
    assert (result.retval, result.data) == (XDP_PASS, sent)


@pytest.mark.parametrize("program", ["floor_dnat", "floor_dnat_nexthop"])
def test_what_is_no_service_passes_untouched(floor, program):
    sent = frame(UDP(sport=4000, dport=54))
    result = floor.program(program).test_run(sent)
    assert (result.retval, result.data) == (XDP_PASS, sent)


def test_without_a_route_the_fib_floor_passes(floor):
    """Test-run without an ingress interface: the FIB has no answer."""
    sent = frame(UDP(sport=4000, dport=53))
    result = floor.program("floor_dnat").test_run(sent)
    assert (result.retval, result.data) == (XDP_PASS, sent)
