"""Processes inside a lab node (servers, curl): started through
bpflab.host.processes (default signals, own session, dies with its
starter, recorded), marked with the lab owner's pid, always cleaned up.
Python programs (the lab's servers) are forked from a fork server of the
owner's (bpflab.host.forkserver, itself marked): a cold Python start is
0.1 s here and seconds in an emulated VM."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

from bpflab.host.forkserver import ForkedProcess, ForkRefused, ForkServer
from bpflab.host.owners import OWNER_ENV
from bpflab.host.processes import record, spawn, stop
from bpflab.host.waits import patience

# What the lab's servers import (lab/servers.py), imported once.
SERVER_PRELOAD = ["argparse", "http.server", "socketserver"]
_fork_servers: dict[int, ForkServer] = {}  # owner pid -> its fork server


def popen(netns: str, argv: list[str], *, owner_pid: int | None = None, env: dict | None = None,
          **kwargs) -> subprocess.Popen:
    """Start argv inside `netns`, marked as started by `owner_pid` (default:
    this process), so a sweep finds it even if it escapes the namespace."""
    return spawn(argv, netns=netns, owner_pid=owner_pid or os.getpid(), env=env, **kwargs)


def popen_python(netns: str, argv: list[str], *, owner_pid: int | None = None, stdout=None, stderr=None,
                 text: bool = False) -> subprocess.Popen | ForkedProcess:
    """`python ARGV` inside `netns`, as popen() starts it (stdin /dev/null),
    forked from the owner's fork server when it can be."""
    owner_pid = owner_pid or os.getpid()
    env = {**os.environ, OWNER_ENV: str(owner_pid)}
    if threading.current_thread() is threading.main_thread():  # a fork server dies with the thread that starts it
        try:
            server = _fork_servers.get(owner_pid)
            if server is None or not server.alive():
                server = _fork_servers[owner_pid] = ForkServer(SERVER_PRELOAD, env)
            proc = server.start(argv, env=env, cwd=os.getcwd(), stdout=stdout, stderr=stderr, text=text, netns=netns)
            record(proc)
            return proc
        except ForkRefused:
            pass
    return popen(netns, [sys.executable, *argv], owner_pid=owner_pid, stdout=stdout, stderr=stderr, text=text,
                 stdin=subprocess.DEVNULL)


def close_fork_servers() -> None:
    """Stop the fork servers (what they forked dies with them)."""
    while _fork_servers:
        _fork_servers.popitem()[1].close()


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
        out, err = proc.communicate(input, timeout=patience(timeout))
    finally:
        stop(proc)
    result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result
