"""xdp_dnat's next hops, kept from the kernel's tables instead of a FIB
lookup per packet (loaders/nexthops.py, bpf/xdp_dnat.bpf.c's backend_hops):
what the loader writes is what the lab's topology says; the program takes
a kept hop and falls back to the FIB for none, a reused slot or a packet
above the hop's MTU; and under traffic, when a backend's MAC changes, it
moves behind another interface or its route goes away, no frame goes to
the old next hop 100 ms later and none is lost that the kernel delivers."""
import dataclasses
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from scapy.layers.inet import TCP, UDP
from scapy.layers.l2 import Ether

from bpflab.host.netns import entered
from bpflab.host.waits import scaled_timeout, wait_until
from bpflab.lab import dnat
from bpflab.lab.topology import Endpoint, Link, Neighbour
from bpflab.loaders.nexthops import HopTable
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.services import BackendHop
from bpflab.loaders.xdp_dnat import XdpDnat
from tests.xdp_dnat_frames import BACKEND_IP, DNS, HTTP, VIP, client_frame, dnat_runner

pytestmark = pytest.mark.kernel
SERVICES = [str(HTTP), str(DNS)]
SETTLE_S = 0.1  # the bound: 100 ms after a change no frame takes the old hop


def hops(dnat_) -> dict[str, tuple]:
    """backend IP -> (ifindex, mtu, smac, dmac) as the program reads them."""
    return {socket.inet_ntoa(struct.pack("=I", h.ip)): (h.ifindex, h.mtu, bytes(h.smac).hex(":"), bytes(h.dmac).hex(":"))
            for h in HopTable.of(dnat_.obj).items().values()}


def test_the_kept_hop_is_the_topologys(dnat_lab, attach):
    dnat_ = attach(XdpDnat, "eth0", netns=dnat_lab.netns("lb"), mode="native", services=SERVICES, return_path=False)
    lb_out, backend = dnat_lab.endpoint("lb", "eth1"), dnat_lab.endpoint("backend", "eth0")
    assert hops(dnat_) == {BACKEND_IP: (dnat_lab.ifindex("lb", "eth1"), 1500, lb_out.mac, backend.mac)}


def test_the_program_takes_a_kept_hop_and_asks_the_fib_without_one(dnat_lab):
    """Test-run (no keeper): a hop in the map is used as it is (its MACs are
    not the FIB's here); one for another address, or a packet above its MTU,
    goes to the FIB, whose MACs are the lab's."""
    lab = dnat_lab
    with dnat_runner(lab, services=(HTTP,)) as runner:
        frame = bytes(client_frame(TCP(sport=4000, dport=80, flags="S")))
        slot = runner.table.states()[0].backends[0].slot
        table = HopTable.of(runner.obj)
        fib_macs = (lab.endpoint("backend", "eth0").mac, lab.endpoint("lb", "eth1").mac)

        def macs_out(hop):
            table.write({slot: hop})
            result = runner.run(frame)
            assert result.action == "XDP_REDIRECT", result.action
            out = Ether(result.data)
            return out.dst, out.src

        kept = BackendHop(ip_be32(BACKEND_IP), 7, 1500)
        kept.smac[:], kept.dmac[:] = bytes.fromhex("0a0000000001"), bytes.fromhex("0a0000000002")
        assert macs_out(kept) == ("0a:00:00:00:00:02", "0a:00:00:00:00:01")
        assert macs_out(None) == fib_macs
        assert macs_out(_with(kept, ip=ip_be32("10.244.1.77"))) == fib_macs  # the slot now holds another backend
        assert macs_out(_with(kept, mtu=len(frame) - 14 - 1)) == fib_macs
        assert macs_out(_with(kept, mtu=len(frame) - 14)) == ("0a:00:00:00:00:02", "0a:00:00:00:00:01")


def _with(hop: BackendHop, **fields) -> BackendHop:
    copy = BackendHop.from_buffer_copy(hop)
    for name, value in fields.items():
        setattr(copy, name, value)
    return copy


class Stream:
    """UDP datagrams from the client to the DNS service, one every
    INTERVAL_S, each carrying its sequence number; when each was sent."""

    INTERVAL_S = 0.001

    def __init__(self, lab, seconds: float):
        with entered(lab.netns("client")):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sent: list[float] = []
        self.count = int(seconds / self.INTERVAL_S)
        self.thread = threading.Thread(target=self._send, name="nexthop test stream", daemon=True)

    def _send(self) -> None:
        start = time.monotonic()
        for seq in range(self.count):
            delay = start + seq * self.INTERVAL_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.sent.append(time.monotonic())
            self.sock.sendto(struct.pack("!Q", seq), (VIP, 53))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(timeout=scaled_timeout(30))
        self.sock.close()


def arrivals(frames) -> dict[int, str]:
    """seq -> the destination MAC it arrived with."""
    return {struct.unpack("!Q", bytes(f[UDP].payload)[:8])[0]: f.dst for f in frames if UDP in f and f[UDP].dport == 5353}


def through_traffic(lab, change, where=(("backend", "eth0"),), seconds=0.6):
    """Stream for `seconds`, `change` a third of the way in; returns when
    the change was done, each frame's send time, and per capture point the
    frames that arrived (seq -> destination MAC)."""
    captures = [lab.capture(node, ifname, lambda p: UDP in p and p[UDP].dport == 5353) for node, ifname in where]
    with Stream(lab, seconds) as stream:
        assert wait_until(lambda: len(stream.sent) > stream.count // 3, timeout=scaled_timeout(10),
                          what="a third of the stream sent")
        change()
        changed = time.monotonic()
    time.sleep(scaled_timeout(0.1))  # the last frames in flight, and the capture's last poll
    return changed, stream.sent, [arrivals(c.stop()) for c in captures]


def after(sent, changed) -> list[int]:
    """The frames sent once the change had had its 100 ms."""
    return [seq for seq, t in enumerate(sent) if t > changed + scaled_timeout(SETTLE_S)]


def test_a_backend_whose_mac_changes_gets_every_frame_at_its_new_mac_within_100_ms(dnat_lab, attach):
    dnat_ = attach(XdpDnat, "eth0", netns=dnat_lab.netns("lb"), mode="native", services=SERVICES, return_path=False)
    old, new = dnat_lab.endpoint("backend", "eth0").mac, "02:00:00:00:03:55"

    def change():
        dnat_lab.run("backend", ["ip", "link", "set", "eth0", "address", new], check=True)
        dnat_lab.run("lb", ["ip", "neigh", "replace", BACKEND_IP, "lladdr", new, "dev", "eth1", "nud", "permanent"],
                     check=True)

    changed, sent, (got,) = through_traffic(dnat_lab, change)
    late = after(sent, changed)
    assert any(mac == old for mac in got.values())  # the old hop was in use
    assert [seq for seq in late if got.get(seq) != new] == []  # every later frame, at the new MAC
    assert [seq for seq, mac in got.items() if mac == old and sent[seq] > changed + scaled_timeout(SETTLE_S)] == []
    assert hops(dnat_)[BACKEND_IP][3] == new
    assert dnat_.verdicts()["fib_fail"] == 0


def two_ways_topology():
    """dnat, and a second link from the lb (eth2) to the backend (eth1)."""
    base = dnat()
    second = Link(Endpoint("lb", "eth2", "10.245.0.1/24", "02:00:00:00:04:01"),
                  Endpoint("backend", "eth1", "10.245.0.2/24", "02:00:00:00:04:05", gro=True))
    return dataclasses.replace(base, links=base.links + (second,), neighbours=base.neighbours + (
        Neighbour("lb", "eth2", "10.245.0.2", "02:00:00:00:04:05"),))


def test_a_backend_that_moves_behind_another_interface_gets_every_frame_there_within_100_ms(lab_factory, attach):
    lab = lab_factory(two_ways_topology())
    dnat_ = attach(XdpDnat, "eth0", netns=lab.netns("lb"), mode="native", services=SERVICES, return_path=False)

    def change():  # a more specific route, through the backend's other interface
        lab.run("lb", ["ip", "route", "add", f"{BACKEND_IP}/32", "via", "10.245.0.2", "dev", "eth2"], check=True)

    changed, sent, (first, second) = through_traffic(lab, change, (("backend", "eth0"), ("backend", "eth1")))
    late = after(sent, changed)
    assert first and [seq for seq in first if sent[seq] > changed + scaled_timeout(SETTLE_S)] == []
    assert [seq for seq in late if second.get(seq) != "02:00:00:00:04:05"] == []
    assert hops(dnat_)[BACKEND_IP] == (lab.ifindex("lb", "eth2"), 1500, "02:00:00:00:04:01", "02:00:00:00:04:05")


def test_a_backend_whose_route_goes_away_gets_no_frame_100_ms_later(dnat_lab, attach):
    dnat_ = attach(XdpDnat, "eth0", netns=dnat_lab.netns("lb"), mode="native", services=SERVICES, return_path=False)

    def change():
        dnat_lab.run("lb", ["ip", "route", "del", "10.244.1.0/24", "dev", "eth1"], check=True)

    changed, sent, (got,) = through_traffic(dnat_lab, change)
    assert got and [seq for seq in got if sent[seq] > changed + scaled_timeout(SETTLE_S)] == []
    assert hops(dnat_) == {}
    assert dnat_.verdicts()["fib_fail"] >= len(after(sent, changed))  # the FIB's answer: no route


def test_a_neighbour_the_kernel_has_not_resolved_gives_no_hop(dnat_lab, attach):
    """An entry the kernel would not use (FAILED, though it holds an old
    address) is not kept: the FIB answers NO_NEIGH and the kernel resolves."""
    dnat_lab.run("lb", ["ip", "neigh", "replace", "10.244.1.77", "lladdr", "02:00:00:00:03:77", "dev", "eth1",
                        "nud", "failed"], check=True)
    spread = f"{VIP}:80/tcp={BACKEND_IP}:8080,10.244.1.77:8080"
    dnat_ = attach(XdpDnat, "eth0", netns=dnat_lab.netns("lb"), mode="native", services=[spread], return_path=False)
    assert set(hops(dnat_)) == {BACKEND_IP}


def test_a_keeper_that_fails_drops_every_hop_and_says_so(dnat_lab, attach, monkeypatch):
    """A hop nobody keeps can go stale: if the keeper's thread fails, the
    hops go with it and every packet asks the FIB; the loader says why."""
    from bpflab.loaders import nexthops

    dnat_ = attach(XdpDnat, "eth0", netns=dnat_lab.netns("lb"), mode="native", services=SERVICES, return_path=False)
    assert set(hops(dnat_)) == {BACKEND_IP}

    def broken(ipr, tables, ip):
        raise RuntimeError("no answer from the kernel")

    monkeypatch.setattr(nexthops, "work_out", broken)
    dnat_lab.run("lb", ["ip", "route", "add", "10.250.0.0/24", "dev", "eth1"], check=True)  # any route event
    assert wait_until(lambda: dnat_.hop_keeper.failure() is not None, timeout=scaled_timeout(5),
                      what="the keeper's failure")
    assert hops(dnat_) == {}
    assert dnat_.track_backends() == "RuntimeError: no answer from the kernel"
    assert dnat_.track_backends() is None  # said once


def test_the_keepers_thread_leaves_signals_to_the_main_thread(dnat_lab, attach):
    """SIGINT and SIGTERM blocked in the keeper's thread: the kernel then
    delivers them to the main thread, whose deferral (interrupts.deferred,
    around library calls) holds them; a thread that took them would let
    them through in the middle of such a call."""
    dnat_ = attach(XdpDnat, "eth0", netns=dnat_lab.netns("lb"), mode="native", services=SERVICES, return_path=False)
    status = Path(f"/proc/self/task/{dnat_.hop_keeper._thread.native_id}/status").read_text()  # noqa: SLF001
    blocked = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
    assert blocked & (1 << (signal.SIGINT - 1)) and blocked & (1 << (signal.SIGTERM - 1))
