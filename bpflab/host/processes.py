"""Processes bpflab starts (servers, command lines, lab owners), always
cleaned up, and the processes it finds (by namespace, by owner marker).

Every process started with spawn()
- gets SIGINT, SIGTERM and SIGHUP back at their defaults, unblocked: a
  suite started as a background job inherits an *ignored* SIGINT, and a
  child that ignores it cannot be interrupted the way a person's Ctrl-C
  would;
- runs in its own session, so stopping it reaches its children too;
- dies with the thread that started it (PR_SET_PDEATHSIG) when that is the
  main thread, so an aborted or killed run leaves no process behind;
- is recorded, so stop_spawned() stops whatever a test left running.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from .netns import open_netns, setns
from .owners import OWNER_ENV
from .waits import scaled_timeout

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_spawned: list[tuple[int, subprocess.Popen]] = []  # (serial, process)
_serial = itertools.count(1)
_spawned_lock = threading.Lock()


def die_with_parent() -> None:
    """SIGKILL this process when the thread that forked it exits."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def become_subreaper() -> None:
    """Processes orphaned below this one become its children (children())
    instead of init's."""
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _child_setup(netns_fd: int | None, tied_to_parent: bool):
    def preexec():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        # ... and not blocked (a mask is inherited: interrupts.deferred())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
        if tied_to_parent:
            die_with_parent()
        if netns_fd is not None:
            setns(netns_fd)
        os.setsid()  # own process group, so cleanup reaches its children

    return preexec


def spawn(argv: list[str], *, netns: str | None = None, owner_pid: int | None = None, env: dict | None = None,
          pass_fds: tuple[int, ...] = (), recorded: bool = True, **kwargs) -> subprocess.Popen:
    """Start argv (inside `netns` if given). With `owner_pid` it carries the
    owner's marker, so a sweep finds it even if it escapes its namespace.
    `recorded=False`: not stopped by stop_spawned (a helper that outlives
    tests, and still dies with this thread)."""
    fd = open_netns(netns) if netns is not None else None
    full_env = dict(os.environ if env is None else env)
    if owner_pid is not None:
        full_env[OWNER_ENV] = str(owner_pid)
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits: only the
    # main thread lives as long as the run.
    tied_to_parent = threading.current_thread() is threading.main_thread()
    try:
        proc = subprocess.Popen(argv, preexec_fn=_child_setup(fd, tied_to_parent),
                                pass_fds=(*pass_fds, *((fd,) if fd is not None else ())), env=full_env, **kwargs)
    finally:
        if fd is not None:
            os.close(fd)
    if recorded:
        record(proc)
    return proc


def record(proc) -> None:
    """Have stop_spawned() stop `proc` (a Popen, or anything with its
    pid, poll, wait and streams) if it still runs."""
    with _spawned_lock:
        _spawned[:] = [(n, p) for n, p in _spawned if p.poll() is None]
        _spawned.append((next(_serial), proc))


def stop(proc: subprocess.Popen, timeout: float = 3.0) -> int | None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, scaled_timeout(timeout))):
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


def _others() -> list[Path]:
    me = os.getpid()
    return [e for e in Path("/proc").iterdir() if e.name.isdigit() and int(e.name) != me]


def pids_in_netns(inodes: set[int]) -> list[int]:
    """Processes whose network namespace is one of `inodes`."""
    found = []
    for entry in _others():
        with contextlib.suppress(OSError):
            if os.stat(entry / "ns/net").st_ino in inodes:
                found.append(int(entry.name))
    return found


def marked_processes() -> dict[int, int]:
    """{pid: owner pid} of every process an owner started (they carry the
    owner's marker in their environment)."""
    prefix = f"{OWNER_ENV}=".encode()
    found = {}
    for entry in _others():
        with contextlib.suppress(OSError, ValueError):
            for var in (entry / "environ").read_bytes().split(b"\0"):
                if var.startswith(prefix):
                    found[int(entry.name)] = int(var[len(prefix):])
    return found


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (zombies too: their parent reaps them)."""
    found = []
    for entry in _others():
        with contextlib.suppress(OSError, IndexError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def has_exited(pid: int) -> bool:
    """Gone, or a zombie waiting for its parent (it holds no namespace)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def kill_all(pids: list[int]) -> None:
    """SIGKILL each process and wait until it has exited: SIGKILL is
    delivered asynchronously, and a namespace lives on while a process in it
    is still dying."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + scaled_timeout(5)
    pending = list(pids)
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if not has_exited(pid)]
        if pending:
            time.sleep(0.01)
