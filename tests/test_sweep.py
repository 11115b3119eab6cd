"""Leftovers on demand: `python -m bpflab.lab sweep [--dry-run]` lists and
removes what owners that died left (a SIGKILLed command: a CI runner's hard
timeout); and a command that builds a lab sweeps first and says in one line
what it removed."""
import os
import signal

import pytest

from bpflab.host import interrupts, leftovers
from bpflab.host.instances import PIN_ROOT
from bpflab.lab import builder, cli
from bpflab.lab.topology import pair

pytestmark = pytest.mark.kernel


@pytest.fixture
def dead_instance():
    """A loader instance whose loader died: its pin directory, no lock held.
    Only a full sweep removes those (a lab build sweeps owned things only),
    so no test running beside this one takes it first."""
    path = PIN_ROOT / f"sweeptest@bpflab-gone@eth{os.getpid()}"
    path.mkdir(parents=True)
    yield path
    if path.exists():
        path.rmdir()


def test_dry_run_lists_and_removes_nothing_then_sweep_removes(dead_instance, capsys):
    assert cli.main(["sweep", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"would remove loader instance {dead_instance}" in out
    assert "to remove" in out[-1] and "loader instance" in out[-1]
    assert dead_instance.exists()
    assert cli.main(["sweep"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"removing loader instance {dead_instance}" in out
    assert out[-1].endswith(" removed") and "loader instance" in out[-1]
    assert not dead_instance.exists()


def test_a_command_that_builds_a_lab_says_what_it_swept(monkeypatch, capsys):
    gone = [leftovers.Leftover("namespace", "/run/netns/bpflab-99999999-1-left", 99999999),
            leftovers.Leftover("namespace", "/run/netns/bpflab-99999999-1-right", 99999999),
            leftovers.Leftover("pin directory", "/sys/fs/bpf/bpflab-99999999-1", 99999999),
            leftovers.Leftover("owner lock", "/run/bpflab/owners/99999999.lock", 99999999)]
    monkeypatch.setattr(leftovers, "sweep", lambda owned_only=False: gone)

    def command() -> int:
        builder.build(pair()).teardown()
        return 0

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert interrupts.run_command("bpflab csum", command) == 0
    finally:  # the command's handlers are not the test session's
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert capsys.readouterr().err == ("bpflab csum: swept what dead owners left: 2 namespaces, 1 pin directory "
                                       "(owner 99999999, dead)\n")
    builder.build(pair()).teardown()  # outside a command, a library says nothing
    assert capsys.readouterr().err == ""


@pytest.mark.harness
def test_sweep_needs_root(monkeypatch, capsys):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["sweep"]) == 2
    assert capsys.readouterr().err == "python -m bpflab.lab: error: needs root to remove namespaces, pins and processes\n"
