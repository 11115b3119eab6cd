"""Every command, interrupted: one line saying so and what it removed, exit
130 (SIGINT) or 143 (SIGTERM), never a finding's status, no traceback,
nothing left on the host, within a second (bpflab.host.interrupts).

Each command signals itself at a named point (BPFLAB_SIGNAL_AT: before it
does anything, at a frame, while Hypothesis shrinks a failure, while a lab
is being torn down), so every point is hit exactly; one more case signals
from outside, mid-run, the way a user or a CI runner does. The commands
are forked from one warm process (bpflab.host.forkserver): each costs
milliseconds, not a Python start-up."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpflab.host import leftovers
from bpflab.host.forkserver import ForkServer
from bpflab.host.interrupts import SIGNAL_AT_ENV
from bpflab.host.paths import NETNS_RUN_DIR, REPO_ROOT, STATE_DIR
from bpflab.host.processes import stop
from bpflab.host.waits import read_line, scaled_timeout
from bpflab.loaders.objects import BUILD_DIR, object_path

pytestmark = pytest.mark.kernel
CHECKOUT = Path(__file__).resolve().parents[1]  # the examples (REPO_ROOT is where the package is: a copy in mutants)
SIGNALS = ["SIGINT", "SIGTERM"]
STATUS = {"SIGINT": 130, "SIGTERM": 143}
# Run from start to exit, what each command may take here at most (scaled in VMs).
WITHIN_S = 5.0
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture(scope="module")
def commands():
    server = ForkServer(["bpflab.tool.cli", "bpflab.tool.csum", "bpflab.tool.replay", "bpflab.tool.verifier",
                         "bpflab.tool.egress", "bpflab.lab.cli", "bpflab.loaders.cli", "bpflab.loaders.hello",
                         "scapy.all"], ENV, cwd=str(REPO_ROOT), volatile=("PYTEST_CURRENT_TEST", SIGNAL_AT_ENV,
                                                                          "BPFLAB_LAB_NAME"))
    yield server
    server.close()


def interrupted(server, argv: list[str], point: str, sig: str, **env) -> tuple[subprocess.CompletedProcess, int]:
    """`python ARGV` signalling itself with `sig` at `point`: (its result, its pid)."""
    proc = server.start(argv, env={**ENV, SIGNAL_AT_ENV: f"{point}:{sig}", **env}, cwd=str(REPO_ROOT),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=scaled_timeout(WITHIN_S))
    finally:
        stop(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), proc.pid


def assert_one_line(result: subprocess.CompletedProcess, prog: str, sig: str, said: str) -> None:
    """Exit 128 + the signal, and stderr ends with the one line (no traceback, nothing after it)."""
    assert result.returncode == STATUS[sig], result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert [line for line in lines if "interrupted" in line] == [lines[-1]], result.stderr
    assert lines[-1] == f"{prog}: interrupted by {sig}; {said}", result.stderr


def assert_nothing_left(pid: int) -> None:
    left = [str(x) for x in leftovers.find() if x.owner == pid and x.kind != "owner lock"]
    assert left == [], f"left behind by {pid}: {left}"


NAT_BUG = str(BUILD_DIR / "tests" / "nat_forgets_pseudo_header.bpf.o")  # fails at its first frames
TC_NAT = str(BUILD_DIR / "tests" / "tc_nat_correct.bpf.o")
CSUM_CASES = [
    # (what, argv, point, what the line says it removed)
    ("before anything", ["csum", NAT_BUG], "command-start", "nothing was left to remove"),
    ("at a frame", ["csum", NAT_BUG], "csum-frame", "nothing was left to remove"),
    ("while shrinking a failure", ["csum", NAT_BUG], "csum-shrink", "nothing was left to remove"),
    ("in a lab, mid-run", ["csum", str(object_path("xdp_dnat")), "--prog", "xdp_dnat", "--lab", "dnat"], "csum-frame",
     "removed the dnat lab (bpflab-{pid}-1)"),
    ("in a lab, while it is taken down", ["csum", str(object_path("xdp_dnat")), "--prog", "xdp_dnat", "--lab", "dnat",
                                           "--examples", "20"], "lab-teardown", "removed the dnat lab (bpflab-{pid}-1)"),
    ("a tc program in its egress lab", ["csum", TC_NAT, "--states", "partial"], "csum-frame#3",
     "removed the egress lab (bpflab-{pid}-1)"),  # built at its first partial frame, after the probes
]


# xdp_dnat's frames run with the lab's ingress interface in their context: test-run takes it from 5.15.
INGRESS = pytest.mark.since_kernel("xdp_test_run_ctx")


@pytest.mark.parametrize("what,argv,point,said,sig", [
    pytest.param(*case, SIGNALS[i % 2], marks=[INGRESS] if case[0] == "in a lab, mid-run" else [],
                 id=f"{case[0]}-{SIGNALS[i % 2]}") for i, case in enumerate(CSUM_CASES)])
def test_csum(commands, sig, what, argv, point, said):
    """Each point with one of the two signals, taking turns (each signal
    reaches a lab's cleanup: the cases alternate)."""
    result, pid = interrupted(commands, ["-m", "bpflab.tool.cli", *argv], point, sig)
    assert_one_line(result, "bpflab csum", sig, said.format(pid=pid))
    assert "FAILED" not in result.stdout  # never a finding, even with one on the way
    assert_nothing_left(pid)


@pytest.mark.parametrize("sig", ["SIGTERM"])
def test_csum_in_a_namespace_of_the_callers(commands, lab_factory, sig):
    lab = lab_factory("dnat")
    result, pid = interrupted(commands, ["-m", "bpflab.tool.cli", "csum", str(object_path("xdp_dnat")), "--prog",
                                         "xdp_dnat", "--netns", lab.netns("lb")], "csum-frame", sig)
    assert_one_line(result, "bpflab csum", sig, "nothing was left to remove")
    assert (NETNS_RUN_DIR / lab.netns("lb")).exists()  # the caller's, not the command's to remove


@pytest.mark.parametrize("sig", SIGNALS)
def test_run_and_the_verifier_commands(commands, tmp_path, sig):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    wrpcap(str(tmp_path / "in.pcap"), [Ether(src="02:00:00:00:02:02", dst="02:00:00:00:02:01") / IP() / UDP()] * 3)
    result, pid = interrupted(commands, ["-m", "bpflab.tool.cli", "run", TC_NAT, "--pcap", str(tmp_path / "in.pcap")],
                              "run-frame", sig)
    assert_one_line(result, "bpflab run", sig, "nothing was left to remove")
    assert_nothing_left(pid)
    result, _ = interrupted(commands, ["-m", "bpflab.tool.cli", "verifier", str(CHECKOUT / "examples" / "xdp_pong" /
                                                                                "must_reject")], "verifier-built", sig)
    assert_one_line(result, "bpflab verifier corpus", sig, "nothing was left to remove")
    result, pid = interrupted(commands, ["-m", "bpflab.tool.cli", "verifier", "stats", str(BUILD_DIR / "hello.bpf.o"),
                                         str(BUILD_DIR / "xdp_dnat.bpf.o")], "stats-program#2", sig)
    assert_one_line(result, "bpflab verifier stats", sig, "nothing was left to remove")
    assert_nothing_left(pid)


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_loader(commands, lab_factory, sig):
    lab = lab_factory("pair")
    result, pid = interrupted(commands, ["-m", "bpflab.loaders.hello", "eth0", "--netns", lab.netns("right")],
                              "loader-attached", sig)
    assert_one_line(result, "hello", sig, "detached from eth0")
    assert lab.run("right", ["ip", "-d", "link", "show", "eth0"]).stdout.count("prog/xdp") == 0
    assert_nothing_left(pid)


@pytest.mark.parametrize("sig", ["SIGINT"])
def test_lab_up(commands, sig):
    name = f"intr{os.getpid()}"
    result, pid = interrupted(commands, ["-m", "bpflab.lab", "up", "pair"], "lab-up", sig, BPFLAB_LAB_NAME=name)
    assert_one_line(result, "python -m bpflab.lab", sig, f"removed the pair lab (bpflab-{name})")
    assert not (STATE_DIR / f"lab-{name}.json").exists()
    assert [p for p in NETNS_RUN_DIR.iterdir() if p.name.startswith(f"bpflab-{name}")] == []


@INGRESS
def test_a_signal_from_outside_mid_run_stops_it_within_a_second(commands):
    """As a user's Ctrl-C or a cancelled CI job comes: at no chosen point."""
    proc = commands.start(["-m", "bpflab.tool.cli", "csum", str(object_path("xdp_dnat")), "--prog", "xdp_dnat",
                           "--lab", "dnat", "--examples", "1000000"], env=ENV, cwd=str(REPO_ROOT),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_line(proc.stdout, timeout=scaled_timeout(10), what="csum's first line").startswith("bpflab csum")
        time.sleep(0.3)  # into its frames
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=scaled_timeout(WITHIN_S))
        took = time.monotonic() - sent
    finally:
        stop(proc)
    assert proc.returncode == 130 and err.splitlines() == [f"bpflab csum: interrupted by SIGINT; removed the dnat lab "
                                                           f"(bpflab-{proc.pid}-1)"], err
    assert took < scaled_timeout(1.0), f"{took:.2f} s from the signal to the exit"
    assert_nothing_left(proc.pid)


@pytest.mark.harness
def test_a_signal_ignored_at_the_start_stays_ignored():
    """A shell starts background jobs with SIGINT ignored: a Ctrl-C meant for
    the foreground must not stop them. SIGTERM still does."""
    argv = [sys.executable, "-m", "bpflab.tool.cli", "verifier", str(CHECKOUT / "examples" / "xdp_pong" / "must_reject")]

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env={**ENV, SIGNAL_AT_ENV: "verifier-built:SIGINT"}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=ignore_sigint)
    try:
        out, err = proc.communicate(timeout=scaled_timeout(60))
    finally:
        stop(proc)
    assert proc.returncode == 0 and "interrupted" not in err, err
    assert out.splitlines()[-1].startswith("2 programs, 2 as annotated")


def test_json_output_is_not_mixed_with_the_line(commands):
    result, _ = interrupted(commands, ["-m", "bpflab.tool.cli", "csum", NAT_BUG, "--json"], "csum-frame", "SIGINT")
    assert result.stdout == ""  # no half report on stdout
    assert_one_line(result, "bpflab csum", "SIGINT", "nothing was left to remove")
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stderr)


KERNELS = """
import pathlib, sys
from bpflab.host.interrupts import run_command
from bpflab.kernels import matrix
matrix.fetch = lambda version, archive=None: pathlib.Path("/boot/vmlinuz-6.1.0-57-amd64")
matrix.vng_command = lambda image, script: ["sh", sys.argv[1]]
matrix.compile_for_guests = lambda run: []
run = matrix.Run(project=pathlib.Path(sys.argv[2]), command=["pytest"], out=pathlib.Path(sys.argv[2]) / "out")
sys.exit(run_command("bpflab kernels", lambda: matrix.main(["6.1"], run, 1)))
"""


@pytest.mark.harness
def test_kernels_stops_its_vm_and_qemu_with_it(tmp_path):
    """A VM (here vng's stand-in, with qemu's: a grandchild that would run for
    ten minutes) goes when `bpflab kernels` is stopped, within a second."""
    qemu = tmp_path / "qemu.pid"
    fake_vng = tmp_path / "vng.sh"
    fake_vng.write_text(f"echo bpflab-uname=6.1.0-57-amd64\nsh -c 'echo $$ > {qemu}; exec sleep 600' &\nwait\n")
    proc = subprocess.Popen([sys.executable, "-c", KERNELS, str(fake_vng), str(tmp_path)], cwd=REPO_ROOT, env=ENV,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + scaled_timeout(20)
        while not qemu.exists() or not qemu.read_text().strip():
            assert time.monotonic() < deadline, "the fake VM never started"
            time.sleep(0.02)
        grandchild = int(qemu.read_text())
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=scaled_timeout(WITHIN_S))
        took = time.monotonic() - sent
    finally:
        stop(proc)
    assert proc.returncode == 143, err
    assert err.splitlines()[-1] == "bpflab kernels: interrupted by SIGTERM; stopped the VM of 6.1", err
    assert took < scaled_timeout(1.0)
    assert not Path(f"/proc/{grandchild}").exists() or "zombie" in Path(f"/proc/{grandchild}/status").read_text()
