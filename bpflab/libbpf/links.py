"""Find bpf_links system-wide (for --force on an interface held by a link)."""
from __future__ import annotations

import ctypes
import os

from . import _lib
from .errors import BpfError


class bpf_link_info_head(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("prog_id", ctypes.c_uint32)]


def force_detach_xdp_link(prog_id: int) -> int:
    """Detach every link that runs prog_id; returns how many were detached."""
    detached = 0
    cur = ctypes.c_uint32(0)
    while _lib.bpf_link_get_next_id(cur.value, ctypes.byref(cur)) == 0:
        fd = _lib.bpf_link_get_fd_by_id(cur.value)
        if fd < 0:
            continue  # went away meanwhile
        try:
            info = bpf_link_info_head()
            size = ctypes.c_uint32(ctypes.sizeof(info))
            if _lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)) == 0 and info.prog_id == prog_id:
                ret = _lib.bpf_link_detach(fd)
                if ret < 0:
                    raise BpfError(-ret, f"detach of link {info.id}")
                detached += 1
        finally:
            os.close(fd)
    return detached
