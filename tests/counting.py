"""What the counting programs (packet_inspect, packet_counter,
connection_tracker) must produce for the known mix of frames, written out by
hand and checked against the model, and the helpers their tests share."""
from __future__ import annotations

import errno
import json
import socket
import subprocess

from bpflab.host.waits import scaled_timeout
from bpflab.libbpf import possible_cpus
from bpflab.loaders.objects import BUILD_DIR
from tests.clitools import start_loader, wait_attached
from tests.frame_mix import DST_MAC, SRC_MAC, A, B, C, known_mix

MIX = known_mix()
FRAMES = [f for _, f in MIX]

# What the known mix must produce, written out by hand.
EXPECTED_COUNTS = {1: 2, 6: 6, 17: 8, 47: 1}
EXPECTED_CONNS = {
    (A, B, 1): (1, 32), (A, B, 6): (5, 40 + 140 + 20 + 30 + 40), (B, A, 6): (1, 40), (A, B, 17): (3, 33 + 34 + 20),
    (A, C, 47): (1, 52), (C, A, 1): (1, 28), (A, C, 17): (4, 44 + 820 + 628 + 20), (C, B, 17): (1, 28),
}
RACE_KEYS = 20000


def run_all(obj, name, frames):
    prog = obj.program(name)
    for label, frame in frames:
        if len(frame) < 14:
            # Newer kernels refuse test-run frames shorter than an Ethernet
            # header (EINVAL; no such frame reaches XDP from a NIC either);
            # 5.10 runs the program on them, which must then pass them as
            # they are.
            try:
                result = prog.test_run(frame)
            except OSError as exc:
                assert exc.errno == errno.EINVAL, f"{label}: {exc}"
                continue
        else:
            result = prog.test_run(frame)
        assert (result.action, result.data) == ("XDP_PASS", frame), f"{label}: changed or not passed"


def race_on_two_cpus(prog, frame: bytes, keys: int) -> None:
    """Both CPUs run `frame` at the same moment, once per round, with the
    IPv4 source set to a fresh 172.16.0.0 + round each round: the first
    packets of a new key race each other (tests/race_test_run.c)."""
    assert possible_cpus() >= 2, "the race needs two CPUs"
    result = subprocess.run([str(BUILD_DIR / "tests" / "race_test_run"), str(prog.fd), frame.hex(), str(keys), "1"],
                            pass_fds=(prog.fd,), capture_output=True, text=True, timeout=scaled_timeout(60))
    assert result.returncode == 0, result.stderr


def race_source(i: int) -> str:
    return socket.inet_ntoa((0xAC100000 + i).to_bytes(4, "big"))


def lab_frames(lab):
    """The mix as the pair lab carries it (it is addressed from left to
    right already): all but the frames shorter than Ethernet, which a veth
    refuses."""
    assert (lab.endpoint("left", "eth0").mac, lab.endpoint("right", "eth0").mac) == (SRC_MAC, DST_MAC)
    return [(label, frame) for label, frame in MIX if len(frame) >= 14]


def cli_json(pair_lab, name, *extra):
    """Start the loader's command line, inject the mix once it is attached,
    return its JSON lines."""
    proc = start_loader(name, "eth0", "--netns", pair_lab.netns("right"), "--json", *extra)
    try:
        assert "attached to eth0" in wait_attached(proc)
        pair_lab.send("left", "eth0", [f for _, f in lab_frames(pair_lab)])
        out, err = proc.communicate(timeout=scaled_timeout(20))
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]
