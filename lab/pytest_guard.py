"""The session-wide guard, for projects that ask for it (this repository
does), in one line of their conftest.py:

    pytest_plugins = ["bpflab.lab.pytest_guard"]

- Before the session (as root, in the controller): what owners that died
  left is swept, and the namespace the session starts in (links,
  addresses, routes, firewall) is snapshotted.
- After it: a session that changed that namespace, or left anything of its
  own (a namespace, a pin directory, a process, a loader or tracefs
  instance), fails, with each named; then they are removed.
- Every test: processes it started through bpflab (servers, command lines,
  lab owners) are stopped when it ends, however it ends; and, with
  pytest-timeout, a test that does not finish within the session's timeout
  (pytest-timeout's: --timeout, PYTEST_TIMEOUT or the ini's; else
  DEFAULT_TIMEOUT_S), times BPFLAB_TIME_SCALE, fails
  (`@pytest.mark.timeout(N)` sets its own).

Without that line, installing bpflab changes no test session.
"""
from __future__ import annotations

import os

import pytest

from bpflab.host import leftovers, processes, snapshot
from bpflab.host.waits import scale

# A test that does not finish within this many seconds (times BPFLAB_TIME_SCALE)
# fails: a broken program must never hang the suite.
DEFAULT_TIMEOUT_S = 120
BEFORE = pytest.StashKey[dict]()  # config.stash: the namespace as the session found it

# A pytest run that a test starts (a scenario the suite must pass or fail)
# shares the host with the run that started it: it must not sweep what that
# run is using, and answers only for what it made itself.
SCENARIO_ENV = "BPFLAB_SCENARIO"


def _is_scenario() -> bool:
    return os.environ.get(SCENARIO_ENV) == "1"


def _is_controller(config) -> bool:
    return not hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    manager = config.pluginmanager
    if not (manager.has_plugin("timeout") or manager.has_plugin("pytest_timeout")):  # entry point, or -p
        return
    import pytest_timeout  # present: its plugin is loaded

    # pytest-timeout's own reading of the session's timeout (--timeout, then
    # PYTEST_TIMEOUT, then the ini's; 0: none), so the guard scales what the
    # user set; without one, the guard's default.
    configured = pytest_timeout.get_env_settings(config).timeout
    configured = DEFAULT_TIMEOUT_S if configured is None else configured
    for item in items:
        marker = item.get_closest_marker("timeout")
        base = marker.args[0] if marker and marker.args else configured
        item.add_marker(pytest.mark.timeout(base * scale()), append=False)  # before an explicit one


def pytest_sessionstart(session):
    if os.geteuid() == 0 and _is_controller(session.config):
        if not _is_scenario():
            # Leftovers of runs that were SIGKILLed: sweep before we start.
            leftovers.sweep()
        session.config.stash[BEFORE] = snapshot.take()


@pytest.hookimpl(trylast=True)  # after the plugin's own cleanup (its labs and processes) in sessionfinish
def pytest_sessionfinish(session, exitstatus):
    if os.geteuid() != 0 or not _is_controller(session.config):
        return
    before = session.config.stash.get(BEFORE, None)
    problems = [f"root namespace {line}" for line in snapshot.differences(before, snapshot.take())] if before else []
    found = leftovers.find(mine=os.getpid(), only_mine=_is_scenario())
    problems += [str(left) for left in found if left.kind != "owner lock"]
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "bpflab leak guard: the suite left the host changed:\n  " + "\n  ".join(problems)
        if reporter:
            reporter.write_line(text, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        # Reported, and then removed: the labs of this run and of owners
        # that died (a worker killed mid-test) must not outlive the run.
        leftovers.remove(found)


@pytest.fixture(autouse=True)
def _stop_what_the_test_started():
    """Processes a test started through bpflab (servers, the loaders'
    command lines, lab owners) are stopped when it ends, however it ends."""
    mark = processes.spawn_mark()
    yield
    processes.stop_spawned(since=mark)
