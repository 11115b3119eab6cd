"""tc attach, ingress or egress, on an interface index of the calling
thread's network namespace (bpflab.loaders.interfaces does it by name, in
any namespace).

On kernels with tcx (6.6+) the attachment is a bpf_link, which the kernel
removes when its last fd closes, exactly like XDP links. Older kernels get
a classic clsact/cls_bpf filter, removed by close() (called in the same
namespace); a killed owner leaves it behind there, until the interface or
its namespace goes.
"""
from __future__ import annotations

import ctypes
import errno
import os

from . import _lib
from .attachment import Attachment
from .errors import BpfError

BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47  # enum bpf_attach_type
BPF_TC_INGRESS, BPF_TC_EGRESS = 1, 2  # enum bpf_tc_attach_point
DIRECTIONS = {"ingress": (BPF_TCX_INGRESS, BPF_TC_INGRESS), "egress": (BPF_TCX_EGRESS, BPF_TC_EGRESS)}
HANDLE, PRIORITY = 0xB1AB, 0xB1


class TcAttachment(Attachment):
    """A tc program at ingress or egress of an interface: a tcx link, or a
    classic clsact/cls_bpf filter where the kernel has no tcx (`kind`)."""

    def __init__(self, prog_fd: int, ifindex: int, direction: str = "ingress"):
        if direction not in DIRECTIONS:
            raise ValueError(f"tc direction {direction!r}: ingress or egress")
        self.ifindex, self.direction, self.link_fd, self._hook = ifindex, direction, -1, None
        tcx, self._attach_point = DIRECTIONS[direction]
        opts = _lib.bpf_link_create_opts(sz=ctypes.sizeof(_lib.bpf_link_create_opts))
        fd = _lib.bpf_link_create(prog_fd, ifindex, tcx, ctypes.byref(opts))
        if fd >= 0:
            self.link_fd, self.kind = fd, "tcx"
            return
        if fd != -errno.EINVAL:
            raise BpfError(-fd, f"tc {direction} attach to ifindex {ifindex}")
        self._attach_classic(prog_fd)

    def _attach_classic(self, prog_fd: int) -> None:
        hook = _lib.bpf_tc_hook(sz=ctypes.sizeof(_lib.bpf_tc_hook), ifindex=self.ifindex,
                                attach_point=self._attach_point)
        ret = _lib.bpf_tc_hook_create(ctypes.byref(hook))
        if ret < 0 and ret != -errno.EEXIST:
            raise BpfError(-ret, f"clsact on ifindex {self.ifindex}")
        opts = _lib.bpf_tc_opts(sz=ctypes.sizeof(_lib.bpf_tc_opts), prog_fd=prog_fd, handle=HANDLE, priority=PRIORITY)
        ret = _lib.bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts))
        if ret < 0:
            raise BpfError(-ret, f"tc {self.direction} attach to ifindex {self.ifindex}")
        self._hook, self.kind = hook, "cls_bpf"

    @property
    def needs_namespace_to_detach(self) -> bool:
        """A classic filter is removed by ifindex: in its own namespace."""
        return self._hook is not None

    def close(self) -> None:
        if self.link_fd >= 0:
            os.close(self.link_fd)
            self.link_fd = -1
        if self._hook is not None:
            opts = _lib.bpf_tc_opts(sz=ctypes.sizeof(_lib.bpf_tc_opts), handle=HANDLE, priority=PRIORITY)
            _lib.bpf_tc_detach(ctypes.byref(self._hook), ctypes.byref(opts))
            self._hook = None

    def __del__(self):  # an unclosed tcx link's fd; a classic filter needs its namespace, and close()
        if self.link_fd >= 0:
            os.close(self.link_fd)
            self.link_fd = -1
