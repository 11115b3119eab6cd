"""Create a named network namespace without forking.

pyroute2's netns.create forks a helper process (~7-10 ms each). A thread can
unshare its own network namespace and bind-mount it at /run/netns/NAME,
where `ip netns` and pyroute2 find it; the thread then ends and the
namespace lives on through the mount. Removal stays pyroute2's."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

from bpflab.host.netns import CLONE_NEWNET, NETNS_RUN_DIR

MS_BIND = 4096
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def create(name: str) -> None:
    os.makedirs(NETNS_RUN_DIR, exist_ok=True)
    path = os.path.join(NETNS_RUN_DIR, name)
    errors: list[OSError] = []

    def in_new_namespace() -> None:
        try:
            if _libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
            if _libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None) != 0:
                err = ctypes.get_errno()
                os.unlink(path)
                raise OSError(err, f"bind mount of a new netns on {path}: {os.strerror(err)}")
        except OSError as exc:
            errors.append(exc)

    # A throwaway thread: the namespace change must not touch any other thread.
    worker = threading.Thread(target=in_new_namespace, name=f"netns-{name}")
    worker.start()
    worker.join()
    if errors:
        raise errors[0]
