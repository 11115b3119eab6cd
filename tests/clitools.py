"""Running the real command lines from tests."""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from bpflab.host.forkserver import start_python
from bpflab.host.paths import REPO_ROOT
from bpflab.host.processes import spawn, stop
from bpflab.host.waits import read_line, scaled_timeout
from bpflab.lab.pytest_guard import SCENARIO_ENV

# The loaders' modules, imported once by the fork server (and pyroute2,
# which xdp_dnat imports late, for its return path).
LOADERS_PRELOAD = ("bpflab.loaders.registry", "bpflab.loaders.cli", "bpflab.loaders.kube", "pyroute2")


def python(argv: list[str], *, cold: bool = False, unbuffered: bool = False, cwd: Path = REPO_ROOT,
           preload: tuple[str, ...] = LOADERS_PRELOAD):
    """`python ARGV` with PYTHONPATH set to the repository, its stdout and
    stderr piped, as text: forked with `preload` imported (the same command
    line without its imports: 0.2 s for a loader here, seconds in an
    emulated VM) unless `cold` (bpflab.host.forkserver.start_python)."""
    return start_python(argv, preload=preload, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=str(cwd),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, unbuffered=unbuffered, cold=cold)


def run_python(argv: list[str], *, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """python(argv, ...) to completion (stopped after `timeout` s, scaled)."""
    proc = python(argv, **kwargs)
    try:
        out, err = proc.communicate(timeout=scaled_timeout(timeout))
    finally:
        stop(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_loader(name: str, *args: str, timeout: float = 30, unprivileged: bool = False,
               cold: bool = False) -> subprocess.CompletedProcess:
    """python -m bpflab.loaders.NAME args..., to completion. `unprivileged`:
    with every capability dropped (what a non-root user has), a process of
    its own. `cold`: a process of its own (the start-up people get)."""
    argv = [sys.executable, "-m", f"bpflab.loaders.{name}", *args]
    if unprivileged:
        argv = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *argv]
        proc = spawn(argv, cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    else:
        return run_python(argv[1:], cold=cold, timeout=timeout)
    try:
        out, err = proc.communicate(timeout=scaled_timeout(timeout))
    finally:
        stop(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def start_loader(name: str, *args: str, cold: bool = False) -> subprocess.Popen:
    """python -u -m bpflab.loaders.NAME args..., running (stopped when the
    test ends); wait_attached(proc) waits until it says it is attached."""
    return python(["-m", f"bpflab.loaders.{name}", *args], cold=cold, unbuffered=True)


def module_of(proc) -> str:
    """The module a `python [-u] -m MODULE` process runs."""
    return proc.args[proc.args.index("-m") + 1]


def wait_attached(proc: subprocess.Popen, timeout: float = 30) -> str:
    """The loader's "NAME: attached to ..." line (every loader says it first,
    on stderr), read within `timeout` s."""
    line = read_line(proc.stderr, timeout=timeout, what=f"the 'attached to' line of {module_of(proc)}")
    assert "attached to" in line, f"expected the 'attached to' line, got {line!r}{proc.stderr.read() if proc.poll() is not None else ''}"
    return line


def keep_reading(stream, lines: int = 50) -> collections.deque:
    """Read `stream` to its end in a daemon thread, keeping its last lines:
    a long-running loader that prints into a pipe nobody reads blocks when
    the pipe is full (64 KiB: a minute of verdict lines every 0.2 s)."""
    kept: collections.deque = collections.deque(maxlen=lines)
    threading.Thread(target=lambda: kept.extend(stream), daemon=True).start()
    return kept


def stop_loader(proc: subprocess.Popen, output: collections.deque | None = None) -> None:
    """SIGTERM a loader the test started; it must still have been running
    (one that died during the test fails it, with what it said)."""
    died = proc.poll()
    if died is None:
        proc.send_signal(signal.SIGTERM)
    try:
        if output is None:
            _, err = proc.communicate(timeout=scaled_timeout(10))
        else:  # a thread reads stdout
            proc.wait(timeout=scaled_timeout(10))
            err = proc.stderr.read()
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"{module_of(proc)} did not exit within {scaled_timeout(10):.0f} s of SIGTERM "
                             f"(killed); it said:\n{err}" + ("".join(output) if output else "")) from None
    assert died is None, (f"{module_of(proc)} died during the test (exit {died}):\n{err}"
                          + ("".join(output) if output else ""))
    # Stopped by a signal: 128 + SIGTERM and one line saying so, last (bpflab.host.interrupts).
    assert proc.returncode == 143, f"{module_of(proc)} exited {proc.returncode} on SIGTERM:\n{err}"
    assert err.splitlines()[-1].startswith(f"{module_of(proc).rpartition('.')[2]}: interrupted by SIGTERM; "), err


def run_pytest(*args: str, cwd: Path = REPO_ROOT, plugins: tuple[str, ...] = (), env: dict | None = None,
               timeout: float = 120, guard: bool = True) -> subprocess.CompletedProcess:
    """pytest in a process of its own (a scenario the suite must pass or
    fail). Plugins are not autoloaded (that alone costs a second a run):
    pytest-timeout and the lab's plugin always, its session guard as this
    repository has it (`guard`), `plugins` as asked."""
    guarded = ("bpflab.lab.pytest_guard",) if guard else ()
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "pytest_timeout", "-p",
            "bpflab.lab.pytest_plugin", *(a for p in (*guarded, *plugins) for a in ("-p", p)), *args]
    proc = spawn(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                 env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH")))),
                      "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                      SCENARIO_ENV: "1", **(env or {})})
    try:
        out, _ = proc.communicate(timeout=scaled_timeout(timeout))
    finally:
        stop(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, "")


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, exactly one line on stderr, containing every fragment."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, f"exit {result.returncode}, stderr:\n{result.stderr}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]
