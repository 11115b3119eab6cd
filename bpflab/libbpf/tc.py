"""tc ingress attach inside a network namespace.

On kernels with tcx (6.6+) the attachment is a bpf_link, which the kernel
removes when its last fd closes, exactly like XDP links. Older kernels get
a classic clsact/cls_bpf filter, removed on close (a killed owner leaves it
behind there: the interface's namespace going away removes it).
"""
from __future__ import annotations

import ctypes
import errno
import os

from bpflab.host.netns import entered
from bpflab.host.netns import ifindex as lookup_ifindex

from . import _lib
from .errors import BpfError

BPF_TCX_INGRESS = 46
BPF_TC_INGRESS = 1
HANDLE, PRIORITY = 0xB1AB, 0xB1


class TcAttachment:
    def __init__(self, prog_fd: int, ifname: str, netns: str | None = None):
        self.ifname, self.netns = ifname, netns
        self.link_fd = -1
        self._hook = None
        with entered(netns):
            self.ifindex = lookup_ifindex(ifname)
            opts = _lib.bpf_link_create_opts(sz=ctypes.sizeof(_lib.bpf_link_create_opts))
            fd = _lib.bpf_link_create(prog_fd, self.ifindex, BPF_TCX_INGRESS, ctypes.byref(opts))
            if fd >= 0:
                self.link_fd, self.kind = fd, "tcx"
                return
            if fd != -errno.EINVAL:
                raise BpfError(-fd, f"tc attach to {ifname}")
            self._attach_classic(prog_fd)

    def _attach_classic(self, prog_fd: int) -> None:
        hook = _lib.bpf_tc_hook(sz=ctypes.sizeof(_lib.bpf_tc_hook), ifindex=self.ifindex, attach_point=BPF_TC_INGRESS)
        ret = _lib.bpf_tc_hook_create(ctypes.byref(hook))
        if ret < 0 and ret != -errno.EEXIST:
            raise BpfError(-ret, f"clsact on {self.ifname}")
        opts = _lib.bpf_tc_opts(sz=ctypes.sizeof(_lib.bpf_tc_opts), prog_fd=prog_fd, handle=HANDLE, priority=PRIORITY)
        ret = _lib.bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts))
        if ret < 0:
            raise BpfError(-ret, f"tc attach to {self.ifname}")
        self._hook, self.kind = hook, "cls_bpf"

    def detach(self) -> None:
        if self.link_fd >= 0:
            os.close(self.link_fd)
            self.link_fd = -1
        if self._hook is not None:
            opts = _lib.bpf_tc_opts(sz=ctypes.sizeof(_lib.bpf_tc_opts), handle=HANDLE, priority=PRIORITY)
            try:
                with entered(self.netns):
                    _lib.bpf_tc_detach(ctypes.byref(self._hook), ctypes.byref(opts))
            except LookupError:
                pass  # the namespace is gone, and the filter with it
            self._hook = None

    def __enter__(self) -> TcAttachment:
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def __del__(self):
        self.detach()
