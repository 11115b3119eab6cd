"""IPv6 through `bpflab csum` and `bpflab run`: deliberately wrong IPv6
programs (tests/bpf/nat6_bugs.h: an XDP NAT; tests/bpf/pong6_bugs.h: an
ICMPv6 echo responder ported from ICMPv4) caught with the field named, their
correct twins passed; targets that are constants in a program's code aimed
at by hand; and nothing the program changed that bpflab could not judge is
ever called right (exit 4, "not checked: WHY")."""
import json

import pytest
from scapy.layers.inet import GRE, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap

from bpflab.loaders.objects import BUILD_DIR
from bpflab.tool.cli import main
from bpflab.tool.csum import check
from bpflab.tool.edges import Pool, TargetSyntaxError, parse_target
from bpflab.tool.target import Target

pytestmark = pytest.mark.kernel
EXAMPLES = 150


def eth() -> Ether:
    return Ether(src="02:00:00:00:02:02", dst="02:00:00:00:02:01")


def obj(name: str) -> str:
    return str(BUILD_DIR / "tests" / f"{name}.bpf.o")


@pytest.mark.parametrize("program,target,field", [
    ("nat6_correct", None, None),
    ("nat6_skips_l4", None, {"TCP checksum", "UDP checksum"}),
    ("nat6_zeroes_udp", None, {"UDP checksum"}),
    ("pong6_correct", "fd00:53::1/icmp", None),
    ("pong6_forgets_pseudo_header", "fd00:53::1/icmp", {"ICMPv6 checksum"}),
])
def test_each_ipv6_bug_is_caught_with_its_field_and_each_twin_passes(capsys, tmp_path, program, target, field):
    args = ["csum", obj(program), "--examples", str(EXAMPLES), "--out-dir", str(tmp_path), "--json"]
    code = main(args + (["--target", target] if target else []))
    report = json.loads(capsys.readouterr().out)
    if field is None:
        assert (code, report["failure"], report["unchecked"]) == (0, None, 0), report["unchecked_why"]
        assert report["checked"] > EXAMPLES // 4
        return
    assert code == 1
    assert {p["field"] for p in report["failure"]["problems"]} <= field
    assert Ether(bytes.fromhex(report["failure"]["input"])).haslayer(IPv6)


def test_a_zeroed_udp_checksum_over_ipv6_is_named_for_what_it_is(tmp_path, capsys):
    wrpcap(str(tmp_path / "in.pcap"), [eth() / IPv6(src="fd00:1::2", dst="fd00:96::10") / UDP(sport=7, dport=53) / b"q"])
    assert main(["run", obj("nat6_zeroes_udp"), "--pcap", str(tmp_path / "in.pcap")]) == 1
    out, err = capsys.readouterr()
    assert "IPv6.dst fd00:96::10 -> fd00:244::5; UDP.dport 53 -> 5353; UDP.chksum 0x" in out
    assert "[checksums: UDP checksum 0x0000, expected 0x" in out
    assert "(the input had a checksum: 0 would say it has none)]" in out
    assert err.strip() == "1 frames: 1 XDP_TX; 1 changed, 1 with a bad checksum, 0 not checked"


def test_the_issues_false_ok_is_gone(tmp_path, capsys):
    """The report that opened the IPv6 work: the broken NAT's frame was
    printed "ok (not checked: not IPv4)" and the run passed."""
    wrpcap(str(tmp_path / "in.pcap"), [eth() / IPv6(src="fd00:1::2", dst="fd00:96::10") / UDP(sport=7, dport=53) / b"q"])
    assert main(["run", obj("nat6_skips_l4"), "--pcap", str(tmp_path / "in.pcap")]) == 1
    out = capsys.readouterr().out
    assert "ok" not in out.split("[checksums:")[1] and "UDP checksum 0x" in out


def test_what_cannot_be_judged_is_said_counted_and_never_exits_0(tmp_path, capsys):
    frames = [eth() / ARP(pdst="10.0.0.2"),                                             # no checksum: ok
              eth() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE() / b"inner",             # a gap
              eth() / IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(m=1) / UDP() / b"x",  # a gap
              eth() / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest()]          # judged
    wrpcap(str(tmp_path / "in.pcap"), frames)
    assert main(["run", obj("reflect"), "--pcap", str(tmp_path / "in.pcap")]) == 4
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].endswith("[checksums: ok (no checksum: ARP carries no checksum)]")
    assert lines[1].endswith("[checksums: not checked: IP protocol 47 has no checksum judged here]")
    assert lines[2].endswith("[checksums: not checked: a first fragment: its upper-layer checksum covers the whole "
                             "datagram]")
    assert lines[3].endswith("[checksums: ok]")
    assert err.strip() == "4 frames: 4 XDP_TX; 4 changed, 0 with a bad checksum, 2 not checked"


def test_csum_counts_what_it_could_not_judge_and_exits_4(capsys):
    """The reflector changes every frame, fragments included: those cannot
    be judged, so the run is not called right."""
    assert main(["csum", obj("reflect"), "--examples", "90"]) == 4
    out = capsys.readouterr().out
    last = out.splitlines()[-1]
    assert "every one of them right; " in last and " NOT CHECKED (" in last
    assert "a first fragment: its upper-layer checksum covers the whole datagram" in last
    fragment = next(line for line in out.splitlines() if line.strip().startswith("fragment "))
    assert int(fragment.split()[-1]) > 0  # the fragment edge's unchecked column


def test_family_chooses_what_is_aimed_at():
    with Target(obj("nat6_correct")) as target:
        v4 = check(target, examples=60, pool=Pool(families=(4,)))
        v6 = check(target, examples=90, pool=Pool(families=(6,)))
    assert (v4.changed, v4.families) == (0, (4,))  # an IPv6-only program: nothing to change
    assert "ext_headers" not in v4.edges and "ip_options" not in v6.edges
    assert v6.failure is None and v6.checked > 30


@pytest.mark.parametrize("text,targets", [
    ("10.96.0.10:80/tcp", [("10.96.0.10", 80, 6)]),
    ("[fd00::10]:53/udp", [("fd00::10", 53, 17)]),
    ("fd00::10/icmp", [("fd00::10", 0, 58)]),
    ("192.0.2.1:53", [("192.0.2.1", 53, 6), ("192.0.2.1", 53, 17)]),
    ("fd00:53::1", [("fd00:53::1", 0, 6), ("fd00:53::1", 0, 17), ("fd00:53::1", 0, 58)]),
])
def test_targets_by_hand(text, targets):
    assert parse_target(text) == targets


@pytest.mark.parametrize("text,message", [
    ("fd00::zz:53/udp", "want ADDRESS[:PORT][/PROTO], an IPv6 address in brackets when a port follows"),
    ("[fd00::10:53/udp", "want [IPV6]:PORT"),
    ("10.96.0.10:80/sctp", "the protocol is tcp, udp or icmp, not 'sctp'"),
    ("10.96.0.10:99999", "port 99999 is not 0..65535"),
    ("10.96.0.10:80/icmp", "ICMP has no ports"),
])
def test_a_target_that_says_nothing_usable_is_one_line(capsys, text, message):
    with pytest.raises(TargetSyntaxError) as raised:
        parse_target(text)
    assert message in str(raised.value)
    assert main(["csum", obj("pong6_correct"), "--target", text, "--examples", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_an_ipv6_program_aimed_only_by_its_constant(capsys):
    """pong6's address is in no map and no default: without --target nothing
    is changed (exit 3); with it, its echo replies are judged."""
    assert main(["csum", obj("pong6_correct"), "--examples", "60", "--family", "6"]) == 3
    capsys.readouterr()
    assert main(["csum", obj("pong6_correct"), "--examples", "60", "--target", "fd00:53::1"]) == 0
    out = capsys.readouterr().out
    assert "probes changed: fd00:53::1 ICMPv6; named by hand: fd00:53::1 TCP, fd00:53::1 UDP, fd00:53::1 ICMPv6" in out


def test_a_named_target_is_aimed_at_even_where_no_probe_saw_a_change():
    """A program may act only on what a plain probe does not look like (a
    flag, a payload): the targets named by hand get the frames regardless."""
    from bpflab.lab.headers import TCP, parse
    from bpflab.tool.edges import named

    seen = []
    with Target(str(BUILD_DIR / "hello.bpf.o")) as target:
        run = target.run
        target.run = lambda frame, state="none": seen.append(frame) or run(frame, state)
        report = check(target, examples=90, pool=named(Pool(), ["[fd00::10]:53/udp", "10.96.0.10:80/tcp"]))
    assert report.targets == () and report.named == (("fd00::10", 53, 17), ("10.96.0.10", 80, 6))
    aimed = 0
    for frame in seen:
        parsed = parse(frame)
        net = parsed.innermost
        if net is not None and parsed.segment() is not None:
            dport = int.from_bytes(frame[net.upper + 2:net.upper + 4], "big")
            aimed += (net.proto, dport) in ((17, 53), (TCP, 80))
    assert aimed > 0.7 * len(seen), f"{aimed} of {len(seen)} frames went where the targets say"
