"""A tc program in every checksum state the kernel hands packets over in
(bpflab.tool.states): `bpflab csum` and `bpflab run` must call a tc NAT
wrong in exactly the states where it is wrong (tests/bpf/tc_nat_bugs.h,
each variant with one bug) and pass the correct one in all of them.

Which state shows which bug is the kernel's checksum helpers' contract
(net/core/filter.c, net/core/utils.c inet_proto_csum_replace*), written
down here as the model, not derived from bpflab's code:
- CHECKSUM_NONE: the L4 field is the whole checksum and nothing else tracks
  it, so a pseudo-header flag set or missing makes no difference there;
- CHECKSUM_COMPLETE: skb->csum must follow every byte changed that no
  field change balances (the pseudo-header's addresses, a port in a UDP
  datagram without checksum, an IPv6 address: no header checksum balances
  it); the kernel refuses it with EBADMSG;
- CHECKSUM_PARTIAL: the field holds the pseudo-header sum, which must
  follow the addresses and nothing else; UDP without a checksum is never
  partial.
"""
import json
import os
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, in4_pseudoheader
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import checksum as scapy_checksum
from scapy.utils import wrpcap

from bpflab.host import kernel, leftovers
from bpflab.loaders.objects import BUILD_DIR, object_path
from bpflab.tool.cli import main
from bpflab.tool.csum import check
from bpflab.tool.judge import judge
from bpflab.tool.states import StateError, as_partial, choose, parse
from bpflab.tool.target import Target

pytestmark = pytest.mark.kernel
EXAMPLES = 54  # 3 frames per edge, 6 per result edge: every bug below shows within them
COMPLETE = pytest.mark.since_kernel("skb_checksum_complete_test_run")
L4 = {"TCP checksum", "UDP checksum"}
# bug -> the states it is wrong in, each with the fields the report may name there
TC_BUGS = {
    "correct": {},
    "forgets_pseudo_flag": {"complete": {"skb->csum"}, "partial": L4},
    "pseudo_flag_on_port": {"complete": {"skb->csum"}, "partial": L4},
    "skips_l4_address": {"none": L4, "complete": L4, "partial": L4},
    "forgets_mangled_0": {"none": {"UDP checksum"}, "complete": {"skb->csum", "UDP checksum"}},
    "udp0_stale_csum": {"complete": {"skb->csum"}},
    "ipv6_address_stale_csum": {"complete": {"skb->csum"}},  # IPv4's header checksum hides it; IPv6 has none
}


def eth() -> Ether:
    """What `bpflab csum` sends from (its default pool's MACs, the egress lab's too)."""
    return Ether(src="02:00:00:00:02:02", dst="02:00:00:00:02:01")


def tc_nat(name: str):
    return BUILD_DIR / "tests" / f"tc_nat_{name}.bpf.o"


def state_params():
    for bug in TC_BUGS:
        for state in ("none", "complete", "partial"):
            yield pytest.param(bug, state, id=f"{bug}-{state}", marks=[COMPLETE] if state == "complete" else [])


def frames_that_hit_every_bug() -> list[bytes]:
    """What the NAT rewrites, each family, built by scapy: TCP, UDP and UDP
    without a checksum (the last over IPv6 already the sender's mistake)."""
    frames = []
    for ip in (IP(src="10.0.1.2", dst="10.96.0.10"), IPv6(src="fd00:1::2", dst="fd00:96::10")):
        frames += [eth() / ip / TCP(sport=4000, dport=80, flags="PA") / b"segment",
                   eth() / ip / UDP(sport=4000, dport=53) / b"query",
                   eth() / ip / UDP(sport=4000, dport=53, chksum=0) / b"query"]
    return [bytes(f) for f in frames]


@pytest.mark.parametrize("bug,state", list(state_params()))
def test_each_bug_is_caught_in_the_states_where_it_is_wrong(bug, state):
    found = {}
    with Target(tc_nat(bug)) as target:
        for frame in frames_that_hit_every_bug():
            if state == "partial" and as_partial(frame) is None:
                continue
            verdict = judge(frame, target.run(frame, state))
            assert verdict.changed and not verdict.gap, f"{Ether(frame).summary()}: {verdict.summary()}"
            for problem in verdict.problems:
                found.setdefault(problem.field, verdict)
    wrong_in = TC_BUGS[bug]
    if state not in wrong_in:
        assert found == {}, f"tc_nat_{bug} in {state}: {[v.summary() for v in found.values()]}"
        return
    assert set(found) & wrong_in[state], f"tc_nat_{bug}: nothing wrong found in {state}"
    assert set(found) <= wrong_in[state] | ({"Tcp InCsumErrors", "Udp InCsumErrors", "Udp6 InCsumErrors"}
                                           if state == "partial" else set()), found
    if state == "partial":
        # Seen as it left, still partial: the field is a pseudo-header sum, of the wrong addresses.
        first = next(v for field, v in found.items() if field in L4)
        assert first.where == "middle" and first.problems[0].why == "partial: pseudo-header sum", first.summary()


@COMPLETE
def test_the_whole_search_catches_a_bug_only_complete_packets_show():
    """The matrix above with its fixed frames, and here the aimed search
    itself in one state: a UDP datagram without checksum it makes finds it."""
    with Target(tc_nat("udp0_stale_csum")) as target:
        report = check(target, examples=EXAMPLES, states=("complete",))
    assert report.failure is not None and report.failure.state == "complete"
    assert report.failure.case.edge == "udp_no_checksum"


def test_the_correct_twin_passes_in_every_state_the_command_runs(capsys, tmp_path):
    assert main(["csum", str(tc_nat("correct")), "--examples", str(EXAMPLES), "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    states = ["none", *(["complete"] if kernel.has("skb_checksum_complete_test_run") else []), "partial"]
    assert out[1].startswith(f"  checksum states: {', '.join(states)}")
    assert out[3].split()[4:] == [*states, "unchecked"]  # a column per state
    assert out[-1].endswith(f"checked in checksum states {', '.join(states)}: every checksum right.")
    assert list(tmp_path.iterdir()) == []


def test_a_bug_only_partial_packets_show_fails_the_command_naming_state_and_field(capsys, tmp_path):
    code = main(["csum", str(tc_nat("forgets_pseudo_flag")), "--states", "none,partial", "--examples", str(EXAMPLES),
                 "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1, out
    failed = next(line for line in out.splitlines() if line.startswith("FAILED"))
    assert failed.startswith("FAILED in CHECKSUM_PARTIAL: the program let a frame out at egress with ")
    assert "(partial: pseudo-header sum)" in failed and "(as it left, still partial)" in failed
    assert "  field: UDP checksum; expected 0x" in out or "  field: TCP checksum; expected 0x" in out
    # The sink's kernel, after the middle completed the checksum, dropped it too.
    assert "InCsumErrors (the sink's kernel dropped 1 frame(s) for a bad checksum)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["csum-failure-input.pcap", "csum-failure-output.pcap"]


@COMPLETE
def test_a_refusal_in_complete_is_a_failure_with_the_frames_written(capsys, tmp_path):
    code = main(["csum", str(tc_nat("udp0_stale_csum")), "--examples", str(EXAMPLES), "--out-dir", str(tmp_path),
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    failure = report["failure"]
    assert (failure["state"], failure["verdict"], failure["edge"]) == ("complete", "REFUSED", "udp_no_checksum")
    assert failure["problems"] == [{"field": "skb->csum", "expected": None, "actual": None,
                                    "why": "EBADMSG: it no longer matches the bytes the program left"}]
    sent = Ether(bytes.fromhex(failure["input"]))
    assert sent[UDP].chksum == 0 and sent[UDP].dport == 53
    # What the program makes of it, from a run in the none state: its port rewritten.
    assert Ether(bytes.fromhex(failure["output"]))[UDP].dport == 5353
    assert report["states"] == ["none", "complete", "partial"] and report["left_out"] == {}
    assert set(report["edges"]["random"]["states"]) == {"none", "complete", "partial"}


def test_nothing_of_the_egress_lab_is_left_even_after_a_failure():
    with Target(tc_nat("skips_l4_address")) as target:
        report = check(target, examples=EXAMPLES, states=("partial",))
        assert report.failure is not None
        assert [left.kind for left in leftovers.find(mine=os.getpid(), owned_only=True)  # the egress lab, while
                if left.kind == "namespace"] == ["namespace"] * 3                           # the target is open
    assert [left for left in leftovers.find(mine=os.getpid(), owned_only=True)
            if left.kind in ("namespace", "pin directory")] == []


def test_the_partial_oracle_sees_what_a_stack_sends(tmp_path):
    """Measured, not assumed: at the middle the frame is still partial (the
    field holds the pseudo-header sum of the new addresses), at the sink a
    kernel completed it; and the sink's kernel rejects a wrong one (the
    bug tests above), so its silence here means something."""
    frame = bytes(eth() / IP(src="10.0.1.2", dst="10.96.0.10")
                  / TCP(sport=4000, dport=80, flags="S") / b"hello!")
    with Target(tc_nat("correct")) as target:
        arrival = target.run(frame, "partial").arrival
    ((middle, still_partial),), ((sink, completed_partial),) = arrival.at_middle, arrival.at_sink
    assert (still_partial, completed_partial, arrival.kernel_errors) == (True, False, {})
    moved = Ether(middle)
    assert (moved[IP].dst, moved[TCP].dport) == ("10.244.1.5", 8080)
    folded = ~scapy_checksum(in4_pseudoheader(6, moved[IP], len(moved[TCP]))) & 0xFFFF
    assert moved[TCP].chksum == folded
    done = Ether(sink)
    del done[TCP].chksum  # scapy recomputes it from the packet as it arrived
    assert Ether(sink)[TCP].chksum == Ether(bytes(done))[TCP].chksum


def test_a_frame_in_partial_form_holds_its_pseudo_header_sum():
    frame = bytes(eth() / IP(src="192.0.2.1", dst="10.96.0.10") / UDP(sport=1, dport=53) / b"abc")
    data, start, where = as_partial(frame)
    assert (start, where) == (34, 6)
    udp = Ether(frame)[UDP]
    assert struct.unpack_from("!H", data, 40)[0] == ~scapy_checksum(in4_pseudoheader(17, Ether(frame)[IP], len(udp))) & 0xFFFF
    assert data[:40] == frame[:40] and data[42:] == frame[42:]
    never = {"UDP without a checksum": bytes(eth() / IP() / UDP(chksum=0) / b"x"),
             "ICMP": bytes(eth() / IP() / ICMP()),
             "a fragment": bytes(eth() / IP(flags=1) / TCP()),
             "Ethernet padding after the packet": bytes(eth() / IP() / TCP()) + bytes(4)}
    assert {what: as_partial(raw) for what, raw in never.items()} == dict.fromkeys(never)


@pytest.mark.harness
@pytest.mark.parametrize("text,kind,message", [
    ("none,sideways", "tc", "--states none,sideways: choose from none, complete, partial (comma-separated)"),
    ("complete", "xdp", "--states: a xdp program gets raw frames, before the kernel gives them a checksum state"),
])
def test_states_that_cannot_be_asked_for(text, kind, message):
    with pytest.raises(StateError) as raised:
        choose(kind, parse(text))
    assert str(raised.value).startswith(message)


@pytest.mark.harness
def test_what_an_older_kernel_cannot_run_is_left_out_by_default_and_refused_by_name(monkeypatch):
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "vm", "6.1.0-40-amd64", "#1", "x86_64")))
    assert choose("tc", None) == (("none", "partial"), {"complete": "needs Linux 6.11 (this is 6.1.0-40-amd64)"})
    assert choose("tc", None, in_namespace=True)[1]["partial"] == "runs in a lab of its own, not inside --netns or --lab"
    with pytest.raises(StateError, match=r"^--states none,complete: complete: needs Linux 6.11"):
        choose("tc", ["none", "complete"])


def test_bad_states_are_one_line_and_exit_2(capsys):
    assert main(["csum", str(object_path("hello")), "--states", "complete", "--examples", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a xdp program gets raw frames" in err, err


def test_run_shows_each_state_of_each_frame(capsys, tmp_path):
    frames = [eth() / IP(src="10.0.1.2", dst="10.96.0.10") / UDP(sport=5, dport=53) / b"query",
              eth() / IP(src="10.0.1.2", dst="10.96.0.10") / ICMP()]
    wrpcap(str(tmp_path / "in.pcap"), frames)
    states = "none,complete,partial" if kernel.has("skb_checksum_complete_test_run") else "none,partial"
    code = main(["run", str(tc_nat("forgets_pseudo_flag")), "--pcap", str(tmp_path / "in.pcap"), "--states", states])
    out, err = capsys.readouterr()
    assert code == 1
    first, second = out.splitlines()
    assert "IP.dst 10.96.0.10 -> 10.244.1.5; UDP.dport 53 -> 5353" in first
    assert "[none: TC_ACT_OK, ok; " in first
    if "complete" in states:
        assert "; complete: REFUSED, skb->csum (EBADMSG: it no longer matches the bytes the program left); " in first
    assert "; partial: SENT, UDP checksum 0x" in first and "(partial: pseudo-header sum)" in first
    assert second.endswith("unchanged  [none: TC_ACT_OK, unchanged; "
                           + ("complete: TC_ACT_OK, unchanged; " if "complete" in states else "")
                           + "partial: -, not run: only TCP and UDP with a checksum go out partial]")
    assert err.strip() == (f"2 frames: 2 TC_ACT_OK; 1 changed, 1 with a bad checksum, 0 not checked (checksum states: "
                           f"{', '.join(states.split(','))})")


def test_run_json_carries_every_state(capsys, tmp_path):
    wrpcap(str(tmp_path / "in.pcap"), [eth() / IP(src="10.0.1.2", dst="10.96.0.10") / TCP(dport=80)])
    assert main(["run", str(tc_nat("correct")), "--pcap", str(tmp_path / "in.pcap"), "--json", "--states", "none,partial"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["states"] == {"none": {"verdict": "TC_ACT_OK", "checksums": "ok"},
                             "partial": {"verdict": "SENT", "checksums": "ok"}}


def udp_query_whose_rewrite_sums_to_zero() -> bytes:
    """A query to 10.96.0.10:53 whose rewrite to 10.244.1.5:5353 has a UDP
    checksum that computes to 0, so it must be sent as 0xFFFF: the first
    two payload bytes chosen on the rewritten datagram (scapy's sums)."""
    after = IP(src="10.0.1.2", dst="10.244.1.5") / UDP(sport=5, dport=5353, chksum=0) / (b"\0\0query")
    word = scapy_checksum(in4_pseudoheader(17, after, len(after[UDP])) + bytes(after[UDP]))  # adding it sums to 0xFFFF
    payload = word.to_bytes(2, "big") + b"query"
    assert scapy_checksum(in4_pseudoheader(17, after, len(after[UDP])) + bytes(UDP(sport=5, dport=5353, chksum=0,
                                                                                   len=len(after[UDP])) / payload)) == 0
    return bytes(Ether(bytes(eth() / IP(src="10.0.1.2", dst="10.96.0.10") / UDP(sport=5, dport=53) / payload)))


@pytest.mark.parametrize("bug,sent,code", [("correct", 0xFFFF, 0), ("forgets_mangled_0", 0x0000, 1)])
def test_a_udp_checksum_that_computes_to_zero_is_sent_as_ffff(capsys, tmp_path, bug, sent, code):
    frame = udp_query_whose_rewrite_sums_to_zero()
    with Target(tc_nat(bug)) as target:
        assert Ether(target.run(frame).data)[UDP].chksum == sent
    wrpcap(str(tmp_path / "in.pcap"), [Ether(frame)])
    assert main(["run", str(tc_nat(bug)), "--pcap", str(tmp_path / "in.pcap"), "--states", "none"]) == code
    out = capsys.readouterr().out
    assert ("[none: TC_ACT_OK, ok]" in out) if code == 0 else \
        ("[none: TC_ACT_OK, UDP checksum 0x0000, expected 0xffff (the input had a checksum: 0 would say it has none)]"
         in out), out


@pytest.mark.parametrize("bug", ["forgets_pseudo_flag", "udp0_stale_csum"])  # the correct one: the test above
def test_the_command_fails_a_wrong_program(capsys, tmp_path, bug):
    """With its default states, which is what a user runs (the matrix above
    shows each bug in each state; nox -s installed runs every one this way)."""
    code = main(["csum", str(tc_nat(bug)), "--examples", str(EXAMPLES), "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    runnable = set(choose("tc", None)[0])
    # A bug only an unavailable state shows passes here; the report says that state was left out.
    assert code == (1 if runnable & set(TC_BUGS[bug]) else 0), out
    if not code and bug != "correct":
        assert "; left out: complete (needs Linux 6.11" in out
    if code:
        state = next(line for line in out.splitlines() if line.startswith("FAILED in CHECKSUM_")).split()[2]
        assert state.removesuffix(":").removeprefix("CHECKSUM_").lower() in TC_BUGS[bug]
