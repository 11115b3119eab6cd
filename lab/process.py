"""Processes a lab or a test starts (servers, curl, the loaders' command
lines), always cleaned up.

Every process started here
- gets SIGINT, SIGTERM and SIGHUP back at their defaults: a suite started as
  a background job inherits an *ignored* SIGINT, and a child that ignores it
  cannot be interrupted the way a person's Ctrl-C would;
- runs in its own session, so stopping it reaches its children too;
- dies with the thread that started it (PR_SET_PDEATHSIG) when that is the
  main thread, so an aborted or killed test run leaves no process behind;
- is recorded, so `stop_spawned()` stops whatever a test left running.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import os
import signal
import subprocess
import threading

from bpflab.host.netns import open_netns, setns

from .owner import OWNER_ENV
from .patience import patience

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_spawned: list[tuple[int, subprocess.Popen]] = []  # (serial, process)
_serial = itertools.count(1)
_spawned_lock = threading.Lock()


def _child_setup(netns_fd: int | None, die_with_parent: bool):
    def preexec():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        if die_with_parent:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if netns_fd is not None:
            setns(netns_fd)
        os.setsid()  # own process group, so cleanup reaches its children

    return preexec


def spawn(argv: list[str], *, netns: str | None = None, owner_pid: int | None = None, env: dict | None = None,
          **kwargs) -> subprocess.Popen:
    """Start argv (inside `netns` if given). With `owner_pid` it carries the
    owner's marker, so a sweep finds it even if it escapes its namespace."""
    fd = open_netns(netns) if netns is not None else None
    full_env = dict(os.environ if env is None else env)
    if owner_pid is not None:
        full_env[OWNER_ENV] = str(owner_pid)
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits: only the
    # main thread lives as long as the test run.
    die_with_parent = threading.current_thread() is threading.main_thread()
    try:
        proc = subprocess.Popen(argv, preexec_fn=_child_setup(fd, die_with_parent),
                                pass_fds=(fd,) if fd is not None else (), env=full_env, **kwargs)
    finally:
        if fd is not None:
            os.close(fd)
    with _spawned_lock:
        _spawned[:] = [(n, p) for n, p in _spawned if p.poll() is None]
        _spawned.append((next(_serial), proc))
    return proc


def popen(netns: str, argv: list[str], *, owner_pid: int | None = None, env: dict | None = None,
          **kwargs) -> subprocess.Popen:
    """Start argv inside `netns`, marked as started by `owner_pid` (default:
    this process)."""
    return spawn(argv, netns=netns, owner_pid=owner_pid or os.getpid(), env=env, **kwargs)


def run(netns: str, argv: list[str], *, timeout: float = 30, check: bool = False, input: str | None = None,
        owner_pid: int | None = None) -> subprocess.CompletedProcess:
    """Run argv inside `netns` to completion (killed after `timeout`)."""
    proc = popen(netns, argv, owner_pid=owner_pid, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        out, err = proc.communicate(input, timeout=patience(timeout))
    finally:
        stop(proc)
    result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result


def stop(proc: subprocess.Popen, timeout: float = 3.0) -> int | None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, patience(timeout))):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream:
            stream.close()
    return proc.returncode


def spawn_mark() -> int:
    """A mark for stop_spawned(since=...): processes spawned after it."""
    with _spawned_lock:
        return _spawned[-1][0] if _spawned else 0


def stop_spawned(since: int = 0) -> list[list[str]]:
    """Stop every process spawned after mark `since` that still runs;
    returns their argvs."""
    with _spawned_lock:
        mine = [p for n, p in _spawned if n > since]
        _spawned[:] = [(n, p) for n, p in _spawned if n <= since]
    running = [p for p in mine if p.poll() is None]
    for proc in running:
        stop(proc)
    return [list(map(str, p.args)) for p in running]
