"""Processes inside a lab node (servers, curl): started through
bpflab.host.processes (default signals, own session, dies with its
starter, recorded), marked with the lab owner's pid, always cleaned up.
Python programs (the lab's servers and clients) are forked from a fork
server (bpflab.host.forkserver) started with the owner's marker, so they
carry it too: a cold Python start is 0.1 s here and seconds in an emulated
VM."""
from __future__ import annotations

import os
import subprocess
import sys

from bpflab.host.forkserver import ForkedProcess, start_python
from bpflab.host.owners import OWNER_ENV
from bpflab.host.processes import spawn, stop
from bpflab.host.waits import scaled_timeout

# What the lab's servers import (lab/servers.py), imported once.
SERVER_PRELOAD = ("argparse", "http.server", "socketserver")


def popen(netns: str, argv: list[str], *, owner_pid: int | None = None, env: dict | None = None,
          **kwargs) -> subprocess.Popen:
    """Start argv inside `netns`, marked as started by `owner_pid` (default:
    this process), so a sweep finds it even if it escapes the namespace."""
    return spawn(argv, netns=netns, owner_pid=owner_pid or os.getpid(), env=env, **kwargs)


def popen_python(netns: str, argv: list[str], *, owner_pid: int | None = None, stdout=None, stderr=None,
                 text: bool = False) -> subprocess.Popen | ForkedProcess:
    """`python ARGV` inside `netns`, as popen() starts it (stdin /dev/null),
    forked with the servers' modules imported when it can be."""
    return start_python(argv, preload=SERVER_PRELOAD, env={**os.environ, OWNER_ENV: str(owner_pid or os.getpid())},
                        cwd=os.getcwd(), netns=netns, stdout=stdout, stderr=stderr, text=text)


def run(netns: str, argv: list[str], *, timeout: float = 30, check: bool = False, input: str | None = None,
        owner_pid: int | None = None) -> subprocess.CompletedProcess:
    """Run argv inside `netns` to completion (killed after `timeout`);
    this Python's own command lines (`sys.executable -c ...`) forked."""
    if argv[0] == sys.executable and input is None:
        proc = popen_python(netns, argv[1:], owner_pid=owner_pid, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    else:
        proc = popen(netns, argv, owner_pid=owner_pid, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        out, err = proc.communicate(input, timeout=scaled_timeout(timeout))
    finally:
        stop(proc)
    result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result
