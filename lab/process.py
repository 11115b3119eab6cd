"""Processes inside a lab node (servers, curl): started through
bpflab.host.processes (default signals, own session, dies with its
starter, recorded), marked with the lab owner's pid, always cleaned up."""
from __future__ import annotations

import os
import subprocess

from bpflab.host.processes import spawn, stop
from bpflab.host.waits import patience


def popen(netns: str, argv: list[str], *, owner_pid: int | None = None, env: dict | None = None,
          **kwargs) -> subprocess.Popen:
    """Start argv inside `netns`, marked as started by `owner_pid` (default:
    this process), so a sweep finds it even if it escapes the namespace."""
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
