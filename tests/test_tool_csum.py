"""`bpflab csum` catches real checksum bugs in code written elsewhere
(tests/bpf/nat_bugs.h, each variant with one bug), passes the correct ones
(that NAT without bugs, the project's xdp_dnat), says when it checked
nothing, and fails bad input with one line."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.utils import rdpcap

from bpflab.loaders.objects import BUILD_DIR, object_path
from bpflab.tool.cli import main
from bpflab.tool.csum import check
from bpflab.tool.edges import EDGES, RESULT_EDGES, shares
from bpflab.tool.target import Target, TargetError
from tests.budget import IN_VM
from tests.xdp_dnat_frames import DNS, HTTP, map_args

pytestmark = pytest.mark.kernel
# Deterministic: the same frames every run. In a kernel VM (the "vm"
# Hypothesis profile) fewer: every edge still gets its share (5 or 10), and
# every bug below is still caught at 100 (the "vm" profile on the host runs
# exactly these tests); 500 on the host.
EXAMPLES = 100 if IN_VM else 500
LAB_EXAMPLES = 100 if IN_VM else 300  # xdp_dnat in the dnat lab (each frame a FIB lookup in test-run)
SHARES_EXAMPLES = 90 if IN_VM else 180  # 5 and 10 frames per edge, or 10 and 20
# Which checksum each bug corrupts (the field the report must name).
BUGS = {
    "forgets_pseudo_header": {"TCP", "UDP"},  # the L4 checksum misses the address change
    "updates_udp_zero": {"UDP"},              # "no checksum" turned into a wrong one
    "folds_once": {"IPv4", "TCP", "UDP"},     # the carry lost wherever a sum carries twice
    "ignores_ihl": {"IPv4", "TCP", "UDP"},    # writes into the IP options, not the L4 header
}


def nat(name: str) -> Path:
    return BUILD_DIR / "tests" / f"nat_{name}.bpf.o"


def bpflab(capsys, *args: str) -> subprocess.CompletedProcess:
    """`bpflab ARGS` run in this process (main() is the console script's
    entry: what the process prints and returns, without a Python start-up
    that takes a minute in an emulated VM with scapy's imports)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["bpflab", *args], code, out, err)


@pytest.mark.parametrize("bug", list(BUGS))
def test_each_bug_is_reported_with_its_field(bug):
    with Target(nat(bug)) as target:
        report = check(target, examples=EXAMPLES)
    assert report.failure is not None, f"nat_{bug}: {report.frames} frames, {report.checked} checked, no failure"
    assert {p.field.removesuffix(" checksum") for p in report.failure.problems} <= BUGS[bug]
    assert report.failure.verdict == "XDP_TX"


def test_the_same_nat_without_its_bugs_passes():
    with Target(nat("correct")) as target:
        report = check(target, examples=EXAMPLES)
    assert report.failure is None
    assert report.checked > EXAMPLES // 2  # most frames were aimed at what it rewrites
    assert {e for e, c in report.edges.items() if c.changed} >= {"udp_no_checksum", "l4_result_zero", "second_fold",
                                                                    "ip_options"}


def test_the_command_reports_the_smallest_failing_frame_and_writes_it(tmp_path, capsys):
    result = bpflab(capsys, "csum", str(nat("updates_udp_zero")), "--examples", str(EXAMPLES), "--out-dir", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: the program (XDP_TX) sent a frame with UDP checksum" in result.stdout
    assert "  field: UDP checksum; expected 0x" in result.stdout
    (sent,), (got,) = rdpcap(str(tmp_path / "csum-failure-input.pcap")), rdpcap(str(tmp_path / "csum-failure-output.pcap"))
    assert sent[UDP].chksum == 0 and got[UDP].chksum != 0  # "no checksum" was "updated"
    assert f"{bytes(sent).hex()}" in result.stdout


@pytest.mark.since_kernel("xdp_test_run_ctx")  # the FIB needs the ingress interface
def test_xdp_dnat_passes_with_its_services_from_json_in_a_lab(tmp_path, capsys, monkeypatch):
    maps = map_args(tmp_path, [HTTP, DNS])
    monkeypatch.chdir(tmp_path)
    result = bpflab(capsys, "csum", str(object_path("xdp_dnat")), "--prog", "xdp_dnat", *maps, "--lab", "dnat",
                    "--examples", str(LAB_EXAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "frames aimed at 10.96.0.10 ports 53, 80" in result.stdout.splitlines()[0]
    last = result.stdout.splitlines()[-1]
    assert last.startswith(f"{LAB_EXAMPLES} frames, ") and last.endswith("checked: every checksum right.")
    # nothing left behind in the working directory
    assert sorted(tmp_path.iterdir()) == [tmp_path / "backends.json", tmp_path / "services.json"]


@pytest.mark.harness  # the console script pip installed, a process of its own: user space only
def test_json_says_the_same_as_the_table(tmp_path):
    result = subprocess.run([str(Path(sys.executable).parent / "bpflab"), "csum", str(nat("updates_udp_zero")),
                             "--examples", str(EXAMPLES), "--out-dir", str(tmp_path), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    (problem,) = report["failure"]["problems"]
    assert problem["field"] == "UDP checksum" and problem["actual"] != problem["expected"]
    assert bytes.fromhex(report["failure"]["input"])[42 - 2:42] == b"\0\0"  # its UDP checksum was 0
    assert report["frames"] == sum(e["frames"] for e in report["edges"].values())
    assert {"destination": "10.96.0.10", "port": 53, "protocol": 17} in report["targets"]
    assert report["written"] == [str(tmp_path / "csum-failure-input.pcap"), str(tmp_path / "csum-failure-output.pcap")]


def test_every_edge_gets_its_share_of_the_frames():
    with Target(nat("correct")) as target:
        report = check(target, examples=SHARES_EXAMPLES)
    assert {e: c.frames for e, c in report.edges.items()} == shares(SHARES_EXAMPLES)
    assert shares(90) == {e: 10 if e in RESULT_EDGES else 5 for e in EDGES}
    assert shares(180) == {e: 20 if e in RESULT_EDGES else 10 for e in EDGES}


def test_a_program_that_changes_nothing_was_checked_for_nothing(capsys):
    assert main(["csum", str(object_path("hello")), "--examples", "50"]) == 3
    assert "none changed by the program: its checksums were checked for nothing" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["/nonexistent.bpf.o"], "BPF object /nonexistent.bpf.o not found"),
    ([str(object_path("xdp_dnat"))], "has 2 XDP/tc programs (xdp_dnat, dnat_return): say which with --prog"),
    ([str(object_path("xdp_dnat")), "--prog", "nope"], "no program 'nope'"),
    ([str(object_path("xdp_dnat")), "--prog", "xdp_dnat", "--map", "nope=/dev/null"], "map file"),
    ([str(object_path("xdp_dnat")), "--prog", "xdp_dnat", "--map", "services"], "--map wants NAME=FILE.json"),
    ([str(object_path("xdp_dnat")), "--prog", "xdp_dnat", "--lab", "moon"], "--lab moon: no such topology"),
    ([str(object_path("xdp_dnat")), "--prog", "xdp_dnat", "--netns", "bpflab-nowhere"],
     "network namespace 'bpflab-nowhere' does not exist"),
], ids=["no object", "which program", "unknown program", "map file not JSON", "map spec", "unknown lab",
        "unknown netns"])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    assert main(["csum", *args, "--examples", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_map_entry_that_does_not_fit_names_the_field(capsys, tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps([{"key": {"vip": "10.96.0.10", "port": 80, "protocol": 6},
                                                    "value": {}}]))
    assert main(["csum", str(object_path("xdp_dnat")), "--prog", "xdp_dnat", "--map",
                 f"services={tmp_path / 'bad.json'}"]) == 2
    assert capsys.readouterr().err.strip() == ("bpflab csum: error: map services, entry 0, key.protocol: struct service_key "
                                     "has no field 'protocol' (has: vip, port, proto, pad)")


def test_the_python_api_refuses_a_program_it_cannot_run():
    with pytest.raises(TargetError, match="say which with --prog"):
        Target(object_path("xdp_dnat"))
