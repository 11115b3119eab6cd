"""mytcpdump: exactly one event per IPv4 packet, exact fields, no garbage
from truncated frames, and a ring that reports drops and never stalls."""
import ctypes
import json

import pytest
from scapy.layers.inet import IP, TCP, UDP

from bpflab.host.waits import scaled_timeout
from bpflab.lab.frames import towards_peer
from bpflab.libbpf import BpfObject
from bpflab.libbpf.btf import LayoutMismatch
from bpflab.loaders.events import EventStream
from bpflab.loaders.mytcpdump import (
    Event,
    MyTcpdump,
    PacketEvent,
    decode,
    open_stream,
    ring_sizer,
)
from bpflab.loaders.objects import object_path
from tests import model
from tests.clitools import start_loader, wait_attached
from tests.frame_mix import A, B, eth, known_mix, with_ip_field

pytestmark = pytest.mark.kernel


def expected_event(frame: bytes) -> Event | None:
    """What the model says mytcpdump must report for `frame`."""
    ip = model.ipv4(frame)
    if ip is None:
        return None
    ports = model.l4_ports(frame)
    truncated = ip.has_l4 and ip.proto in (6, 17) and ports is None
    return Event(ip.proto, ip.src, ports[0] if ports else None, ip.dst, ports[1] if ports else None, ip.tot_len,
                 fragment=ip.more_fragments or ip.frag_offset != 0, l4_truncated=truncated)


def truncated_cases() -> list[tuple[str, bytes]]:
    tcp = bytes(eth() / IP(src=A, dst=B) / TCP(sport=1111, dport=2222))
    udp = bytes(eth() / IP(src=A, dst=B) / UDP(sport=3333, dport=4444) / b"abc")
    return [
        # tot_len ends 10 bytes into the TCP header; the frame goes on (padding)
        ("tcp header cut by tot_len", with_ip_field(tcp, 2, "!H", 30)),
        ("tcp doff 4", tcp[:14 + 20 + 12] + bytes([0x40]) + tcp[14 + 20 + 13:]),
        ("tcp doff 15 beyond packet", tcp[:14 + 20 + 12] + bytes([0xF0]) + tcp[14 + 20 + 13:]),
        ("udp len 7", udp[:14 + 20 + 4] + b"\x00\x07" + udp[14 + 20 + 6:]),
        ("udp len beyond packet", udp[:14 + 20 + 4] + b"\x00\xff" + udp[14 + 20 + 6:]),
        ("udp header cut by tot_len", with_ip_field(udp, 2, "!H", 24)),
    ]


@pytest.fixture
def dump():
    with BpfObject(object_path("mytcpdump"), load=False) as obj:
        ring_sizer(4096)(obj)  # small, so tests can fill it
        obj.load()
        stream = open_stream(obj)
        yield obj.program("mytcpdump"), stream, obj
        stream.close()


def test_each_ipv4_packet_gives_exactly_one_exact_event_in_order(dump):
    prog, stream, _ = dump
    frames = [f for _, f in known_mix() if len(f) >= 14]
    for f in frames:
        assert prog.test_run(f).data == f
    events = stream.drain()
    assert events == [e for f in frames if (e := expected_event(f))]
    assert [e.line() for e in events[:3]] == [
        "ICMP 10.11.0.1 -> 10.11.0.2 len=32",
        "TCP 10.11.0.1:40000 -> 10.11.0.2:80 len=40",
        "TCP 10.11.0.1:40000 -> 10.11.0.2:80 len=140",
    ]
    fragments = [e.line() for e in events if e.fragment]
    assert fragments == ["UDP 10.11.0.1:1 -> 192.0.2.7:2 len=820 [fragment]",
                         "UDP 10.11.0.1 -> 192.0.2.7 len=628 [fragment]",
                         # a first fragment whose UDP header would be in the padding
                         "UDP 10.11.0.1 -> 192.0.2.7 len=20 [fragment] [truncated L4 header]"]
    assert stream.drops() == 0


def test_truncated_l4_headers_report_no_ports_and_say_so(dump):
    prog, stream, _ = dump
    cases = truncated_cases()
    for _, f in cases:
        prog.test_run(f)
    events = stream.drain()
    assert len(events) == len(cases)
    for (label, frame), event in zip(cases, events, strict=True):
        assert event == expected_event(frame), label
        assert (event.sport, event.dport, event.l4_truncated) == (None, None, True), label
        assert (event.src, event.dst) == (A, B), label
    assert events[0].line() == "TCP 10.11.0.1 -> 10.11.0.2 len=30 [truncated L4 header]"


def test_a_full_ring_counts_every_drop_and_keeps_streaming(dump):
    prog, stream, _ = dump
    frame = bytes(eth() / IP(src=A, dst=B) / UDP(sport=1, dport=2))
    sent = 1000
    for _ in range(sent):
        prog.test_run(frame)
    arrived = len(stream.drain())
    dropped = stream.drops()
    assert arrived + dropped == sent
    assert dropped > 0 and arrived > 0
    for _ in range(50):  # the ring was fully drained: it accepts again
        prog.test_run(frame)
    assert len(stream.drain()) == 50
    assert stream.drops() == dropped


def test_a_mirror_that_disagrees_with_btf_is_refused(dump):
    class Wrong(ctypes.Structure):
        _fields_ = [(name, ctype) for name, ctype in PacketEvent._fields_ if name != "pad"]

    obj = dump[2]
    with pytest.raises(LayoutMismatch, match="Wrong does not match struct packet_event"):
        EventStream(obj, "mytcpdump_events", "mytcpdump_drops", Wrong, "packet_event", decode)


def lab_frames(lab, n):
    from scapy.layers.inet import ICMP

    base = towards_peer(lab.topology, "left")
    kinds = [lambda i: base / TCP(sport=30000 + i, dport=80), lambda i: base / UDP(sport=20000 + i, dport=53) / b"q",
             lambda i: base / ICMP(seq=i)]
    return [bytes(kinds[i % 3](i)) for i in range(n)]


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_lab_frames_give_exactly_n_events_in_order(pair_lab, attach, mode):
    dumper = attach(MyTcpdump, "eth0", netns=pair_lab.netns("right"), mode=mode)
    frames = lab_frames(pair_lab, 60)
    pair_lab.send("left", "eth0", frames)
    events = list(dumper.events(timeout=0.5))
    assert events == [expected_event(f) for f in frames]
    assert dumper.stream.drops() == 0


def test_cli_json_and_lines(pair_lab):
    frames = lab_frames(pair_lab, 6)
    for args, parse in ((["--json"], json.loads), ([], str)):
        proc = start_loader("mytcpdump", "eth0", "--netns", pair_lab.netns("right"), "--count", "6", *args)
        try:
            assert "attached to eth0" in wait_attached(proc)
            pair_lab.send("left", "eth0", frames)
            out, err = proc.communicate(timeout=scaled_timeout(20))
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        got = [parse(line) for line in out.splitlines()]
        want = [expected_event(f) for f in frames]
        if args:
            assert got == [e.as_json() for e in want]
            assert got[1] == {"proto": 17, "src": "10.11.0.1", "sport": 20001, "dst": "10.11.0.2", "dport": 53,
                              "len": 29, "fragment": False, "l4_truncated": False, "proto_name": "UDP"}
        else:
            assert got == [e.line() for e in want]
            assert got[0] == "TCP 10.11.0.1:30000 -> 10.11.0.2:80 len=40"
        assert err.splitlines()[-1] == "mytcpdump: 6 events shown, 0 dropped (ring full)"
