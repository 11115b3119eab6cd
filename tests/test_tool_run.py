"""`bpflab run`: every frame of a capture through any program (XDP or tc),
with its verdict, the fields it changed and the checksums it sent, and a
pcapng of what it sent with each verdict as a comment."""
import json

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap, wrpcap, wrpcapng

from bpflab.lab.checksums import verify_frame
from bpflab.loaders.objects import object_path
from bpflab.tool.cli import main
from tests.xdp_dnat_frames import BACKEND_IP, CLIENT_IP, HTTP, VIP, backend_frame, client_frame, map_args, rewritten

pytestmark = pytest.mark.kernel


@pytest.fixture
def capture(tmp_path):
    frames = [client_frame(TCP(sport=40000, dport=80, flags="S")),          # a service: rewritten
              client_frame(UDP(sport=5000, dport=53), payload=b"query"),    # not a service
              Ether(src="02:00:00:00:02:02", dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=VIP),
              Ether(src="02:00:00:00:02:02", dst="02:00:00:00:01:01") / IPv6() / UDP()]
    wrpcap(str(tmp_path / "in.pcap"), frames)
    wrpcapng(str(tmp_path / "in.pcapng"), frames)
    return tmp_path, [bytes(f) for f in frames]


def run(capsys, *args):
    code = main(["run", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.since_kernel("xdp_test_run_ctx")  # the FIB needs the ingress interface
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_each_frame_its_verdict_changes_and_checksums(capsys, capture, kind):
    tmp, frames = capture
    code, out, err = run(capsys, object_path("xdp_dnat"), "--prog", "xdp_dnat", "--lab", "dnat",
                         *map_args(tmp, [HTTP]), "--pcap", tmp / f"in.{kind}")
    assert code == 0, err
    lines = out.splitlines()
    want = Ether(rewritten(frames[0], HTTP))  # the model's output
    old, new = Ether(frames[0]), want
    assert lines[0] == (
        "    0  XDP_REDIRECT    Ether.dst 02:00:00:00:02:01 -> 02:00:00:00:03:05; "
        "Ether.src 02:00:00:00:02:02 -> 02:00:00:00:03:01; "
        f"IP.chksum 0x{old[IP].chksum:04x} -> 0x{new[IP].chksum:04x}; IP.dst {VIP} -> {BACKEND_IP}; "
        f"TCP.dport 80 -> 8080; TCP.chksum 0x{old[TCP].chksum:04x} -> 0x{new[TCP].chksum:04x}  [checksums: ok]")
    assert lines[1:] == ["    1  XDP_PASS        unchanged  [checksums: unchanged]",
                         "    2  XDP_PASS        unchanged  [checksums: unchanged]",
                         "    3  XDP_PASS        unchanged  [checksums: unchanged]"]
    assert err.strip() == "4 frames: 3 XDP_PASS, 1 XDP_REDIRECT; 1 changed, 0 with a bad checksum, 0 not checked"


@pytest.mark.since_kernel("xdp_test_run_ctx")  # the FIB needs the ingress interface
def test_json_and_what_the_program_sent_as_pcapng(capsys, capture):
    tmp, frames = capture
    code, out, _ = run(capsys, object_path("xdp_dnat"), "--prog", "xdp_dnat", "--lab", "dnat",
                       *map_args(tmp, [HTTP]), "--pcap", tmp / "in.pcap", "--json",
                       "--out", tmp / "out.pcapng")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["index"], r["verdict"], r["checksums"]) for r in rows] == [
        (0, "XDP_REDIRECT", "ok"), (1, "XDP_PASS", "unchanged"), (2, "XDP_PASS", "unchanged"),
        (3, "XDP_PASS", "unchanged")]
    assert "TCP.dport 80 -> 8080" in rows[0]["changed"]
    sent = rdpcap(str(tmp / "out.pcapng"))
    assert [p.comments for p in sent][:2] == [[b"bpflab run: frame 0, XDP_REDIRECT; checksums ok"],
                                              [b"bpflab run: frame 1, XDP_PASS; checksums unchanged"]]
    assert verify_frame(bytes(sent[0])).ok and bytes(sent[1]) == frames[1]


def test_a_tc_program_with_its_maps_from_json(capsys, tmp_path):
    """dnat_return (sched_cls): a backend's reply comes back from the VIP."""
    (tmp_path / "replies.json").write_text(json.dumps([  # the connection the forward path opened
        {"key": {"saddr": BACKEND_IP, "daddr": CLIENT_IP, "sport": 8080, "dport": 40000, "proto": 6},
         "value": {"vip": VIP, "port": 80, "proto": 6}}]))
    (tmp_path / "config.json").write_text(json.dumps([{"key": 0, "value": {"service_ifindex": 7}}]))
    wrpcap(str(tmp_path / "replies.pcap"), [backend_frame(TCP(sport=8080, dport=40000, flags="SA"))])
    maps = ["--map", f"dnat_replies={tmp_path / 'replies.json'}", "--map", f"dnat_config={tmp_path / 'config.json'}"]
    code, out, _ = run(capsys, object_path("xdp_dnat"), "--prog", "dnat_return", *maps,
                       "--pcap", tmp_path / "replies.pcap", "--states", "none")
    assert code == 0
    assert out.startswith("    0  TC_ACT_REDIRECT ")
    assert f"IP.src {BACKEND_IP} -> {VIP}" in out and "TCP.sport 8080 -> 80" in out and out.endswith("[none: TC_ACT_REDIRECT, ok]\n")
    # The egress lab has no interface 7: what the program redirected there is not judged, and said so (exit 4).
    code, out, err = run(capsys, object_path("xdp_dnat"), "--prog", "dnat_return", *maps,
                         "--pcap", tmp_path / "replies.pcap", "--states", "none,partial")
    assert code == 4
    assert out.endswith("[none: TC_ACT_REDIRECT, ok; partial: SENT, not checked: it never "
                        "reached the middle (redirected elsewhere, or dropped after the egress hook)]\n")
    assert err.strip().endswith("1 changed, 0 with a bad checksum, 1 not checked (checksum states: none, partial)")
    assert CLIENT_IP not in out  # the destination stays


def test_a_bad_checksum_in_what_the_program_sent_exits_1(capsys, tmp_path):
    from bpflab.loaders.objects import BUILD_DIR

    wrpcap(str(tmp_path / "in.pcap"), [client_frame(TCP(sport=40000, dport=80, flags="S"))])
    code, out, err = run(capsys, BUILD_DIR / "tests" / "nat_forgets_pseudo_header.bpf.o", "--pcap", tmp_path / "in.pcap")
    assert code == 1
    assert "XDP_TX" in out and "[checksums: TCP checksum 0x" in out and ", expected 0x" in out
    assert err.strip().endswith("1 changed, 1 with a bad checksum, 0 not checked")


def unusable_capture(tmp_path, what: str) -> str:
    """A capture made by scapy's writers, then spoiled as `what` says."""
    frame = Ether(src="02:00:00:00:02:02", dst="02:00:00:00:02:01") / IP() / UDP() / b"payload"
    if what == "notpcap":
        (tmp_path / "notpcap").write_text("hello")
        return "notpcap"
    if what == "raw IP":  # link type 101: IP packets with no Ethernet header
        wrpcap(str(tmp_path / "raw.pcap"), [IP(bytes(frame[IP]))] * 2, linktype=101)
        return "raw.pcap"
    if what in ("cut pcap", "cut pcapng"):
        name = "cut." + what.split()[1]
        (wrpcap if name.endswith(".pcap") else wrpcapng)(str(tmp_path / name), [frame] * 2)
        (tmp_path / name).write_bytes((tmp_path / name).read_bytes()[:-10])  # the last record's end gone
        return name
    if what == "snap length":  # the frame cut by the capture: 30 of its bytes kept
        from scapy.utils import RawPcapWriter

        writer = RawPcapWriter(str(tmp_path / "snap.pcap"), linktype=1, snaplen=30, sync=True)
        writer.write_header(None)
        writer.write_packet(bytes(frame)[:30], wirelen=len(frame))
        writer.close()
        return "snap.pcap"
    return "missing.pcap"


@pytest.mark.parametrize("what,message", [
    ("missing", "capture {tmp}/missing.pcap not found"),
    ("notpcap", "{tmp}/notpcap: not a pcap or pcapng file"),
    ("raw IP", "{tmp}/raw.pcap: frame 0 is raw IP (no link-layer header), not an Ethernet frame"),
    ("cut pcap", "{tmp}/cut.pcap: frame 1: the file ends in the middle of it (cut short)"),
    ("cut pcapng", "{tmp}/cut.pcapng: the file ends in the middle of a record after frame 0 (cut short)"),
    ("snap length", "{tmp}/snap.pcap: frame 0 was captured cut short (30 of its 49 bytes"),
])
def test_a_capture_that_is_not_one_of_whole_ethernet_frames_is_one_line(capsys, tmp_path, what, message):
    path = tmp_path / unusable_capture(tmp_path, what)
    code, out, err = run(capsys, object_path("hello"), "--pcap", path)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message.format(tmp=tmp_path) in err, err


@pytest.mark.parametrize("out, message", [
    ("{tmp}/no/such/dir/out.pcapng", "argument --out: cannot write {tmp}/no/such/dir/out.pcapng: no directory "
                                     "{tmp}/no/such/dir"),
    ("{tmp}", "argument --out: {tmp} is a directory, not a file")])
def test_an_output_that_cannot_be_written_is_refused_before_the_work(capsys, tmp_path, capture, out, message):
    tmp, _ = capture
    with pytest.raises(SystemExit) as exited:
        run(capsys, object_path("hello"), "--pcap", tmp / "in.pcap", "--out", out.format(tmp=tmp_path))
    out_, err = capsys.readouterr()
    assert (exited.value.code, out_) == (2, "")
    assert err == f"bpflab run: error: {message.format(tmp=tmp_path)} (see --help)\n"
