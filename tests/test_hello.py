"""hello: loads, passes frames unchanged, traces each frame, and its CLI
attaches, streams, detaches and fails with one clear line."""
import random
import signal

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bpflab.host.waits import read_line, scaled_timeout
from bpflab.lab.frames import towards_peer
from bpflab.libbpf import XDP_PASS, BpfObject
from bpflab.loaders.hello import Hello
from bpflab.loaders.interfaces import query as xdp_query
from bpflab.loaders.objects import BUILD_DIR, object_path
from tests.clitools import assert_one_line_error, run_loader, start_loader, wait_attached

pytestmark = pytest.mark.kernel


def unique_frame(lab, size: int):
    """A left->right UDP frame of exactly `size` bytes: the size marks our
    trace line among everyone else's (trace output is machine-wide)."""
    base = towards_peer(lab.topology, "left") / UDP(sport=4000, dport=4001)
    return base / bytes(size - len(base))


def test_object_loads_and_test_run_passes_the_frame_unchanged():
    with BpfObject(object_path("hello")) as obj:
        frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / UDP() / b"hello")
        result = obj.program("hello").test_run(frame)
    assert result.retval == XDP_PASS
    assert result.data == frame


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_an_injected_frame_produces_its_trace_line(pair_lab, attach, mode):
    size = random.randrange(200, 1400)
    hello = attach(Hello, "eth0", netns=pair_lab.netns("right"), mode=mode)
    pair_lab.send("left", "eth0", unique_frame(pair_lab, size))
    ifindex = pair_lab.ifindex("right", "eth0")
    wanted = f"bpflab hello: packet len={size} ifindex={ifindex}"
    lines = []
    for line in hello.lines(timeout=2):
        lines.append(line)
        if line.endswith(wanted):
            break
    assert any(line.endswith(wanted) for line in lines), lines


def test_cli_attaches_streams_and_detaches_on_sigterm(pair_lab):
    ns = pair_lab.netns("right")
    size = random.randrange(200, 1400)
    proc = start_loader("hello", "eth0", "--netns", ns, "--mode", "native")
    try:
        first = wait_attached(proc)
        assert first == f"hello: attached to eth0 (ifindex {pair_lab.ifindex('right', 'eth0')}) in netns {ns}, native mode\n"
        assert xdp_query("eth0", ns).mode == "native"
        pair_lab.send("left", "eth0", unique_frame(pair_lab, size))
        # Other tests' hello programs may print too (trace output is
        # machine-wide): ours is the one with our frame's length.
        wanted = f"bpf_trace_printk: bpflab hello: packet len={size} ifindex={pair_lab.ifindex('right', 'eth0')}"
        seen = [read_line(proc.stdout, timeout=5, what="hello's trace lines")]
        while wanted not in seen[-1] and len(seen) < 50 and seen[-1]:
            seen.append(read_line(proc.stdout, timeout=5, what=f"the trace line of our {size}-byte frame"))
        assert wanted in seen[-1], seen
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=scaled_timeout(10))
    finally:
        proc.kill()
    assert proc.returncode == 143, err  # 128 + SIGTERM: what a signal's stop says (bpflab.host.interrupts)
    assert err.splitlines()[-1] == "hello: interrupted by SIGTERM; detached from eth0"
    assert not any(line.startswith("hello:") for line in out.splitlines())  # stdout: trace lines only
    assert xdp_query("eth0", ns).prog_id == 0


def test_cli_unknown_interface(pair_lab):
    ns = pair_lab.netns("right")
    result = run_loader("hello", "nosuch0", "--netns", ns)
    assert_one_line_error(result, "interface 'nosuch0' does not exist", ns)
    assert xdp_query("eth0", ns).prog_id == 0


def test_cli_unknown_namespace():
    result = run_loader("hello", "eth0", "--netns", "bpflab-no-such-ns")
    assert_one_line_error(result, "network namespace 'bpflab-no-such-ns' does not exist")


def test_cli_not_root(pair_lab):
    result = run_loader("hello", "eth0", "--netns", pair_lab.netns("right"), unprivileged=True)
    assert_one_line_error(result, "needs root")
    assert xdp_query("eth0", pair_lab.netns("right")).prog_id == 0


def test_cli_object_missing(pair_lab, tmp_path):
    result = run_loader("hello", "eth0", "--netns", pair_lab.netns("right"), "--object", str(tmp_path / "hello.bpf.o"))
    assert_one_line_error(result, "not found", "run `make hello`")


def test_cli_verifier_rejection_shows_the_verifier_message(pair_lab):
    from tests.bpfsrc import unchecked_read_message

    obj = BUILD_DIR / "tests" / "unchecked_hello.bpf.o"  # its packet read has no bounds check
    result = run_loader("hello", "eth0", "--netns", pair_lab.netns("right"), "--object", str(obj))
    assert_one_line_error(result, f"verifier rejected program 'hello': {unchecked_read_message('R1')}")
    assert xdp_query("eth0", pair_lab.netns("right")).prog_id == 0
