"""Named network namespaces: create, enter (one thread at a time), remove.

setns() changes the namespace of one thread, and sockets (netlink, packet)
stay bound to the namespace they were created in. So ifindex lookups, XDP
attach and netlink queries happen inside `entered(ns)`, and the thread goes
back where it was when the block ends.

A namespace is created without forking: a throwaway thread unshares its own
network namespace and bind-mounts it at /run/netns/NAME, where `ip netns`
and pyroute2 find it (pyroute2's create forks a helper, 7-10 ms each); it
lives on through the mount until remove() unmounts it.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Iterator

from .mounts import MS_BIND, mount, umount
from .paths import NETNS_RUN_DIR

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


class NamespaceNotFound(LookupError):
    def __init__(self, name: str):
        super().__init__(f"network namespace '{name}' does not exist (no {NETNS_RUN_DIR / name})")
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
        return os.open(NETNS_RUN_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceNotFound(name) from None


def inode(name: str) -> int | None:
    """The namespace's inode (what /proc/PID/ns/net of its processes shows)."""
    try:
        return (NETNS_RUN_DIR / name).stat().st_ino
    except FileNotFoundError:
        return None


def create(name: str) -> None:
    os.makedirs(NETNS_RUN_DIR, exist_ok=True)
    path = NETNS_RUN_DIR / name
    errors: list[OSError] = []

    def in_new_namespace() -> None:
        try:
            if _libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
            try:
                mount("/proc/thread-self/ns/net", path, None, MS_BIND)
            except OSError:
                os.unlink(path)
                raise
        except OSError as exc:
            errors.append(exc)

    # A throwaway thread: the namespace change must not touch any other thread.
    worker = threading.Thread(target=in_new_namespace, name=f"netns-{name}")
    worker.start()
    worker.join()
    if errors:
        raise errors[0]


def remove(name: str) -> None:
    """Unmount and delete /run/netns/NAME; the kernel frees the namespace once
    no process and no other mount holds it. Missing is fine."""
    path = NETNS_RUN_DIR / name
    if not path.exists():
        return
    with contextlib.suppress(OSError):
        umount(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


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
