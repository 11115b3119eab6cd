"""Run code inside a named network namespace, for the calling thread only.

setns() changes the namespace of one thread, and sockets (netlink, packet)
stay bound to the namespace they were created in. So ifindex lookups, XDP
attach and netlink queries happen inside `entered(ns)`, and the thread goes
back where it was when the block ends.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import socket
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


class NamespaceNotFound(LookupError):
    def __init__(self, name: str):
        super().__init__(f"network namespace '{name}' does not exist (no {NETNS_RUN_DIR}/{name})")
        self.name = name


class InterfaceNotFound(LookupError):
    def __init__(self, name: str, netns: str | None):
        where = f"network namespace '{netns}'" if netns else "the current network namespace"
        super().__init__(f"interface '{name}' does not exist in {where}")
        self.name = name


def setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def open_netns(name: str) -> int:
    try:
        return os.open(os.path.join(NETNS_RUN_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceNotFound(name) from None


@contextlib.contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Inside the block the calling thread is in netns `name` (None: stay)."""
    if name is None:
        yield
        return
    target = open_netns(name)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(target)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(target)
        os.close(home)


def ifindex(ifname: str, netns: str | None = None) -> int:
    """Index of `ifname` in `netns`; InterfaceNotFound if there is none."""
    with entered(netns):
        try:
            return socket.if_nametoindex(ifname)
        except OSError:
            raise InterfaceNotFound(ifname, netns) from None
