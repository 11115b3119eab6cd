"""Processes inside a lab node (servers, curl), always cleaned up."""
from __future__ import annotations

import os
import signal
import subprocess

from loaders.libbpf.netns import open_netns, setns

from .owner import OWNER_ENV
from .patience import patience


def _enter(netns_fd: int):
    def preexec():
        setns(netns_fd)
        os.setsid()  # own process group, so cleanup reaches its children

    return preexec


def popen(netns: str, argv: list[str], *, owner_pid: int | None = None, env: dict | None = None,
          **kwargs) -> subprocess.Popen:
    """Start argv inside `netns`. It carries the owner's marker so a sweep
    finds it even if it escapes its namespace."""
    fd = open_netns(netns)
    full_env = dict(os.environ if env is None else env)
    full_env[OWNER_ENV] = str(owner_pid or os.getpid())
    try:
        return subprocess.Popen(argv, preexec_fn=_enter(fd), pass_fds=(fd,), env=full_env, **kwargs)
    finally:
        os.close(fd)


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
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, None)):
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
