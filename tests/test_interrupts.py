"""A SIGTERM or Ctrl-C stops a bpflab process however unluckily it lands
(bpflab.host.interrupts): in a finalizer, where Python drops exceptions,
or inside a block that holds signals back. Each case runs in a child
process (signal handlers belong to a process's main thread)."""
import subprocess
import sys
import textwrap

import pytest

from bpflab.host.paths import REPO_ROOT
from bpflab.host.processes import spawn, stop
from bpflab.host.waits import scaled_timeout


def run_child(body: str, timeout: float = 10) -> subprocess.CompletedProcess:
    """Python running `body` after interrupt_on(SIGTERM, SIGINT); its
    output, or a failure naming what it printed if it ran on."""
    code = "import os, signal, time\nfrom bpflab.host import interrupts\n" \
           "interrupts.interrupt_on(signal.SIGTERM, signal.SIGINT)\n" + textwrap.dedent(body)
    proc = spawn([sys.executable, "-c", code], cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        out, err = proc.communicate(timeout=scaled_timeout(timeout))
    except subprocess.TimeoutExpired:
        stop(proc)
        out, err = proc.communicate()
        pytest.fail(f"the child ran on {timeout} s after its signal (lost), it printed:\n{out}{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_that_lands_in_a_finalizer_is_delivered_again(sig):
    # The signal arrives while __del__ runs: the Interrupted raised there is
    # dropped by Python ("Exception ignored"), and without redelivery the
    # loop below would run for ever.
    result = run_child(f"""
        class Unlucky:
            def __del__(self):
                os.kill(os.getpid(), signal.{sig})
                for _ in range(1000):  # the handler runs in here
                    pass
                print("finalizer done", flush=True)

        obj = Unlucky()
        del obj
        try:
            while True:
                time.sleep(0.005)
        except KeyboardInterrupt as exc:
            print("stopped by", exc.signum == signal.{sig} and "{sig}")
        """)
    assert result.stdout.splitlines() == ["stopped by " + sig], result
    assert result.stderr == "", "a redelivered interrupt prints nothing"


def test_a_signal_held_back_by_deferred_is_handled_right_after_the_block():
    result = run_child("""
        try:
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(10000):
                    pass
                print("block finished", flush=True)
            print("after the block (wrong)")
        except KeyboardInterrupt:
            print("stopped after the block")
        """)
    assert result.stdout.splitlines() == ["block finished", "stopped after the block"], result


def test_a_process_spawned_inside_deferred_gets_signals_unblocked():
    # A signal mask is inherited: a server started while signals are held
    # back must still stop on SIGTERM.
    result = run_child("""
        import subprocess, sys
        from bpflab.host.processes import spawn
        with interrupts.deferred():
            child = spawn([sys.executable, "-c", "import time; time.sleep(60)"])
        child.terminate()
        print("exit", child.wait(timeout=10))
        """)
    assert result.stdout.splitlines() == ["exit -15"], result


def test_other_exceptions_in_finalizers_are_still_reported():
    result = run_child("""
        class Broken:
            def __del__(self):
                raise ValueError("in a finalizer")
        obj = Broken()
        del obj
        print("ran on")
        """)
    assert result.stdout == "ran on\n"
    assert "Exception ignored" in result.stderr and "ValueError: in a finalizer" in result.stderr
