"""Every program against hostile frames, via test-run: the verdict, which
frames change (only those xdp_dnat must rewrite), counters equal to an
independent Python model, and rings that never stall."""
import ctypes

import pytest
from hypothesis import HealthCheck, given, settings
from scapy.layers.inet import IP, TCP, UDP

from bpflab.host import kernel
from bpflab.lab import builder, dnat
from bpflab.libbpf import BpfObject
from bpflab.loaders.connection_tracker import ConnTable
from bpflab.loaders.mytcpdump import open_stream as mytcpdump_stream
from bpflab.loaders.objects import object_path
from bpflab.loaders.packet_counter import read_counts
from bpflab.loaders.packet_inspect import Packet
from bpflab.loaders.packet_inspect import open_stream as inspect_stream
from bpflab.loaders.registry import PROGRAMS
from tests import model
from tests.budget import IN_VM
from tests.frame_mix import eth, known_mix
from tests.fuzz_frames import FRAMES
from tests.test_mytcpdump import expected_event
from tests.xdp_dnat_frames import DNS, HTTP, DnatRunner, rewritten

pytestmark = pytest.mark.kernel
SERVICES = (HTTP, DNS)
SERVICE_KEYS = {(s.vip, s.port, {"tcp": 6, "udp": 17}[s.proto]) for s in SERVICES}


class Programs:
    """All six programs loaded once, with their readers."""

    def __init__(self, lab):
        self.objs = {name: BpfObject(object_path(name)) for name in PROGRAMS}
        self.inspect = inspect_stream(self.objs["packet_inspect"])
        self.dump = mytcpdump_stream(self.objs["mytcpdump"])
        self.conns = ConnTable(self.objs["connection_tracker"])
        # xdp_dnat's test-run needs the ingress interface (its FIB lookup):
        # older kernels fuzz the other five, and test_xdp_dnat_was_fuzzed says so.
        self.dnat = DnatRunner(self.objs["xdp_dnat"], lab.netns("lb"), lab.ifindex("lb", "eth0")) \
            if kernel.has("xdp_test_run_ctx") else None
        self.dnat_checked = 0
        if self.dnat is not None:
            for s in SERVICES:
                self.dnat.table.put(s)
        self.counter_map = self.objs["packet_counter"].map("proto_packets").bind(ctypes.c_uint32, ctypes.c_uint64)
        self.frames: list[bytes] = []  # everything run so far, for whole-table checks

    def close(self):
        self.inspect.close()
        self.dump.close()
        for obj in self.objs.values():
            obj.close()

    def check(self, frame: bytes) -> None:
        """Run `frame` through every program and compare with the model."""
        self.frames.append(frame)
        for name in PROGRAMS:
            if name != "xdp_dnat":  # the one that rewrites: check_dnat
                self.check_passthrough(name, frame)
        if self.dnat is not None:
            self.check_dnat(frame)
            self.dnat_checked += 1

    def check_passthrough(self, name: str, frame: bytes) -> None:
        obj = self.objs[name]
        ip = model.ipv4(frame)
        before_count = sum(self.counter_map.lookup(ip.proto)) if name == "packet_counter" and ip else None
        before_conn = self.conns.lookup(ip.src, ip.dst, ip.proto) if name == "connection_tracker" and ip else None
        result = obj.program(name).test_run(frame)
        assert (result.action, result.data) == ("XDP_PASS", frame), f"{name} changed or dropped the frame"
        if name == "packet_counter" and ip:
            assert sum(self.counter_map.lookup(ip.proto)) == before_count + 1
        elif name == "connection_tracker" and ip:
            after = self.conns.lookup(ip.src, ip.dst, ip.proto)
            old = (before_conn.packets, before_conn.bytes) if before_conn else (0, 0)
            assert (after.packets - old[0], after.bytes - old[1]) == (1, ip.tot_len)
        elif name == "packet_inspect":
            assert self.inspect.drain() == ([Packet(ip.src, ip.dst, ip.proto)] if ip else [])
            assert self.inspect.drops() == 0
        elif name == "mytcpdump":
            event = expected_event(frame)
            assert self.dump.drain() == ([event] if event else [])
            assert self.dump.drops() == 0

    def check_dnat(self, frame: bytes) -> None:
        want = model.dnat_verdict(frame, SERVICE_KEYS)
        before = self.dnat.verdicts()
        result = self.dnat.run(frame)
        after = self.dnat.verdicts()
        delta = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        if want == "redirected":
            ip = model.ipv4(frame)
            service = next(s for s in SERVICES if (s.vip, s.port) == (ip.dst, model.l4_ports(frame)[1]))
            assert result.action == "XDP_REDIRECT"
            assert result.data == rewritten(frame, service)
            assert delta == {"rewritten": 1, "redirected": 1}
        else:
            assert (result.action, result.data) == ("XDP_PASS", frame)
            assert delta == {want: 1}

    def check_tables(self) -> None:
        """The whole counter and connection tables equal the model fed every
        frame so far (so nothing was counted that should not have been)."""
        assert read_counts(self.objs["packet_counter"]) == model.protocol_counts(self.frames)
        got = {(c.src, c.dst, c.proto): (c.packets, c.bytes) for c in self.conns.table()}
        assert got == model.connections(self.frames)


@pytest.fixture(scope="module")
def programs():
    lab = builder.build(dnat())
    progs = Programs(lab)
    yield progs
    progs.close()
    lab.teardown()


HEADERS_END = 14 + 2 * 4 + 60 + 60  # Ethernet, two VLAN tags, the longest IP and TCP headers


def cuts(frame: bytes) -> range | list[int]:
    """Where to cut `frame`: at every byte offset; in a kernel VM (the "vm"
    profile, 20-40x slower) every offset through the deepest headers (two
    VLAN tags, 60 bytes of IP, 60 of TCP: 142) and the last 16 bytes, every
    16th between: no program reads a payload, so the cuts inside one differ
    only in how far the frame runs short of tot_len (the two fragments'
    1,400 bytes were most of the test's minute there)."""
    if not IN_VM:
        return range(14, len(frame) + 1)
    end = len(frame) + 1
    return sorted({*range(14, min(HEADERS_END, end)), *range(HEADERS_END, end, 16), *range(max(14, end - 16), end)})


def test_known_frames_truncated_at_every_byte_offset(programs):
    for label, frame in known_mix():
        for cut in cuts(frame):
            try:
                programs.check(frame[:cut])
            except AssertionError as exc:
                raise AssertionError(f"{label} cut at {cut} bytes: {exc}") from None
    programs.check_tables()


def test_fuzzed_frames(programs):
    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
    @given(frame=FRAMES)
    def each(frame):
        programs.check(frame)

    each()
    # Then the whole tables: nothing counted that the model did not count.
    assert len(programs.frames) >= min(100, settings.default.max_examples)  # as many as the profile asks
    programs.check_tables()


@pytest.mark.since_kernel("xdp_test_run_ctx")
def test_xdp_dnat_takes_part(programs):
    """xdp_dnat is fuzzed with the others only where the kernel can test-run
    it with its ingress interface; here that is checked, on a frame of each
    of its services, so an older kernel shows the gap as this test's skip."""
    before = programs.dnat_checked
    for s in SERVICES:
        l4 = UDP(sport=4000, dport=s.port) if s.proto == "udp" else TCP(sport=4000, dport=s.port)
        programs.check(bytes(eth() / IP(src="10.0.1.2", dst=s.vip) / l4))
    assert programs.dnat_checked == before + len(SERVICES)


@pytest.mark.since_kernel("xdp_test_run_frags")
def test_frames_larger_than_a_page_are_seen_only_in_part(programs):
    """These are not xdp.frags programs: they see the first buffer of a
    frame, a page less XDP headroom and skb_shared_info (3520 bytes here),
    so a larger IPv4 packet looks cut short and passes uncounted. On a real
    device the kernel refuses to attach them where the MTU would need more."""
    assert model.XDP_LINEAR_MAX == 3520
    for size in (3519, 3520, 3521, 9000):
        programs.check(bytes(eth() / IP(src="10.9.9.9", dst="10.8.8.8") / UDP() / bytes(size - 42)))
    assert programs.conns.lookup("10.9.9.9", "10.8.8.8", 17).packets == 2


def test_the_rings_keep_flowing_after_being_filled(programs):
    """Fill packet_inspect's ring without reading, then drain: everything
    sent either arrived or was counted as dropped, and it flows again."""
    frame = bytes(eth() / IP(src="10.1.1.1", dst="10.2.2.2") / UDP())
    prog = programs.objs["packet_inspect"].program("packet_inspect")
    ring = programs.objs["packet_inspect"].map("inspect_events")
    # Each record takes at least its 8-byte header plus a 12-byte event, so
    # the ring is full long before this many: a program that never counts a
    # drop fails here instead of looping forever.
    bound = ring.max_entries // 16 + 1
    sent = 0
    while programs.inspect.drops() == 0:
        assert sent < bound, f"{sent} events sent into a {ring.max_entries}-byte ring and no drop counted"
        prog.test_run(frame)
        sent += 1
    extra = 100
    for _ in range(extra):
        prog.test_run(frame)
    arrived = len(programs.inspect.drain())
    assert arrived + programs.inspect.drops() == sent + extra
    prog.test_run(frame)
    assert programs.inspect.drain() == [Packet("10.1.1.1", "10.2.2.2", 17)]
