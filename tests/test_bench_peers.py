"""The scale bench's peers and its generator of new connections
(bench/peers.py, bench/newflows.py, bench/bpf/gen.bpf.c) do what their
figures claim: every generated frame is a new connection with a checksum the
kernel accepts (scapy's checksum the model; the kernel's conntrack, shown to
refuse a wrong one, the judge), and kube-proxy's two shapes send each
service's connections to that service's backends only, spread over all of
them (the lb's conntrack table read back: which backend each connection got).

The lab tests here check the bench's tools, which run on this machine's
kernel only (nox -s bench), so they are `harness`: the kernel matrix's VMs
leave them to the host line (in its Debian guests nftables' NAT chain type
and iptables' tcp match did not load: "No such file or directory")."""
import collections
import ctypes
import socket

import pytest
from pyroute2.conntrack import Conntrack
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from bpflab.bench import newflows, peers, scale
from bpflab.bench.datapath import GenConfig, generate, napi_at_the_lb
from bpflab.host.netns import entered
from bpflab.lab.topology import VIP
from bpflab.libbpf import BpfObject
from bpflab.loaders.objects import BUILD_DIR
from bpflab.loaders.services import Backend, Service

pytestmark = pytest.mark.kernel

XDP_REDIRECT = 4
CONNECTIONS = 150  # a service's share per backend: 50 expected, 15-85 is six deviations either side


def generated(cfg: GenConfig, frame: bytes, count: int) -> list[bytes]:
    """What the generator makes of `frame`, run `count` times (not live: the
    kernel hands each frame back)."""
    with BpfObject(BUILD_DIR / "bench" / "gen.bpf.o") as gen:
        gen.map("gen_config").bind(ctypes.c_uint32, GenConfig).update(0, cfg)
        out = []
        for _ in range(count):
            result = gen.program("gen").test_run(frame)
            assert result.retval == XDP_REDIRECT
            out.append(result.data)
        return out


@pytest.mark.parametrize("l4", [TCP(dport=80, flags="S", seq=7), UDP(dport=53)], ids=["tcp", "udp"])
def test_every_generated_frame_is_a_new_connection_with_scapys_checksum(l4):
    frame = bytes(Ether(src="02:00:00:00:02:02", dst="02:00:00:00:02:01") / IP(src="10.0.1.2", dst=VIP) / l4 / bytes(18))
    got = generated(GenConfig.of(3, frame, (65533, 3)), frame, 5)  # the ports wrap after three
    for i, data in enumerate(got):
        expected = Ether(frame)
        expected[l4.__class__].sport, expected[l4.__class__].chksum = 65533 + i % 3, None
        assert data.hex() == bytes(expected).hex(), f"frame {i}"


def test_without_new_flows_every_frame_is_the_template():
    frame = bytes(Ether(src="02:00:00:00:02:02", dst="02:00:00:00:02:01") / IP(src="10.0.1.2", dst=VIP) / UDP(sport=4000, dport=53) / bytes(18))
    assert generated(GenConfig.of(3, frame), frame, 3) == [frame] * 3


SERVICES = [  # every backend a neighbour of the lb (scale_lab), so connections are forwarded and confirmed
    Service("10.97.0.1", 80, "tcp", tuple(Backend(ip, 8001) for ip, _ in scale.MEASURED[:3])),
    Service(VIP, 80, "tcp", tuple(Backend(ip, 8002) for ip, _ in scale.MEASURED[3:6])),
    Service("10.97.0.2", 443, "tcp", tuple(Backend(ip, 8003) for ip, _ in scale.MEASURED[6:9])),
]


@pytest.fixture(scope="module")
def lab():
    lab = scale.scale_lab()
    try:
        napi_at_the_lb(lab)
        yield lab
    finally:
        lab.teardown()


def connections(lab) -> list:
    with entered(lab.netns("lb")):
        ct = Conntrack()
        try:
            return list(ct.dump_entries())
        finally:
            ct.close()


@pytest.mark.harness
@pytest.mark.since_kernel("xdp_live_frames")
def test_the_kernel_refuses_a_wrong_checksum_here(lab):
    """The oracle: on this path the lb's conntrack checks TCP checksums, so a
    connection in its table is one whose checksum the kernel accepted."""
    peers.load(lab, "nft", SERVICES)
    try:
        right = newflows.syn_frame(lab)
        wrong = bytearray(right)
        wrong[50] ^= 0xFF  # TCP checksum
        with BpfObject(BUILD_DIR / "bench" / "gen.bpf.o") as gen:
            generate(lab, gen, 1, bytes(wrong))
            assert connections(lab) == []
            generate(lab, gen, 1, right)
        (entry,) = connections(lab)
        assert (entry.tuple_orig.daddr, entry.tuple_orig.dport) == (VIP, 80)
    finally:
        peers.unload(lab)


@pytest.mark.harness
@pytest.mark.since_kernel("xdp_live_frames")
@pytest.mark.parametrize("shape", peers.SHAPES)
def test_each_service_goes_to_its_own_backends_spread_over_all(lab, shape):
    peers.load(lab, shape, SERVICES)
    try:
        gen = newflows.Generator(lab)
        try:
            for s in SERVICES:
                gen.frame = newflows.syn_frame(lab, s.vip, s.port)
                gen.send(CONNECTIONS)
        finally:
            gen.close()
        picked = collections.defaultdict(collections.Counter)
        for entry in connections(lab):
            assert entry.tuple_orig.proto == socket.IPPROTO_TCP
            picked[(entry.tuple_orig.daddr, entry.tuple_orig.dport)][
                (entry.tuple_reply.saddr, entry.tuple_reply.sport)] += 1
        for s in SERVICES:
            got = picked[(s.vip, s.port)]
            assert sum(got.values()) == CONNECTIONS, f"{s.vip}: every frame a new connection"
            assert set(got) == {(b.ip, b.port) for b in s.backends}, f"{s.vip} went to {dict(got)}"
            assert all(15 <= n <= 85 for n in got.values()), f"{s.vip} spread {dict(got)}"
    finally:
        peers.unload(lab)
    assert connections(lab) == []


@pytest.mark.parametrize("shape", peers.SHAPES)
def test_the_shapes_are_kube_proxys(shape):
    """The per-packet walk each mode is known for: one verdict-map lookup
    (nftables), one rule per service walked in order (iptables)."""
    text = (peers.nft_ruleset if shape == "nft" else peers.iptables_restore)(SERVICES)
    if shape == "nft":
        assert "ip daddr . meta l4proto . th dport vmap @service-ips" in text
        assert f"{VIP} . tcp . 80 : goto service-1" in text
        assert text.count("numgen random mod 3 vmap") == 3
    else:
        rules = [line for line in text.splitlines() if line.startswith("-A KUBE-SERVICES")]
        assert rules == [f"-A KUBE-SERVICES -d {s.vip}/32 -p tcp -m tcp --dport {s.port} -j KUBE-SVC-{i}"
                         for i, s in enumerate(SERVICES)]
    assert peers.ordered(SERVICES[1], [SERVICES[0], SERVICES[2]]) == SERVICES
