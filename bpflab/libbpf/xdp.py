"""XDP attach / query / detach on an interface inside a network namespace.

Attachments are bpf_links: the kernel detaches the program when the last fd
of the link closes, so a loader that exits, is interrupted or is killed
leaves nothing attached behind.
"""
from __future__ import annotations

import ctypes
import dataclasses
import errno
import os

from bpflab.host.netns import entered
from bpflab.host.netns import ifindex as lookup_ifindex

from . import _lib
from .errors import BpfError

MODES = {"native": _lib.XDP_FLAGS_DRV_MODE, "generic": _lib.XDP_FLAGS_SKB_MODE}
_MODE_NAMES = {
    _lib.XDP_ATTACHED_NONE: None,
    _lib.XDP_ATTACHED_DRV: "native",
    _lib.XDP_ATTACHED_SKB: "generic",
    _lib.XDP_ATTACHED_HW: "offload",
    _lib.XDP_ATTACHED_MULTI: "multi",
}


class AlreadyAttached(BpfError):
    def __init__(self, ifname: str, state: XdpState):
        self.state = state
        self.ifname = ifname
        BpfError.__init__(self, errno.EBUSY, f"attach to {ifname}")
        self.args = (errno.EBUSY, str(self))

    def __str__(self) -> str:
        return (
            f"interface '{self.ifname}' already has an XDP program attached "
            f"(prog id {self.state.prog_id}, {self.state.mode} mode)"
        )


@dataclasses.dataclass(frozen=True)
class XdpState:
    mode: str | None  # native, generic, offload, multi or None
    prog_id: int


def query(ifname: str, netns: str | None = None) -> XdpState:
    with entered(netns):
        idx = lookup_ifindex(ifname)
        opts = _lib.bpf_xdp_query_opts(sz=ctypes.sizeof(_lib.bpf_xdp_query_opts))
        ret = _lib.bpf_xdp_query(idx, 0, ctypes.byref(opts))
    if ret < 0:
        raise BpfError(-ret, f"XDP query on {ifname}")
    return XdpState(_MODE_NAMES.get(opts.attach_mode, "unknown"), opts.prog_id)


class XdpAttachment:
    """An XDP program attached to an interface through a bpf_link."""

    def __init__(self, prog_fd: int, ifname: str, netns: str | None = None, mode: str | None = None):
        if mode is not None and mode not in MODES:
            raise ValueError(f"unknown XDP mode '{mode}' (native or generic)")
        self.ifname, self.netns, self.mode = ifname, netns, mode
        self.link_fd = -1
        with entered(netns):
            self.ifindex = lookup_ifindex(ifname)
            opts = _lib.bpf_link_create_opts(sz=ctypes.sizeof(_lib.bpf_link_create_opts), flags=MODES.get(mode, 0))
            fd = _lib.bpf_link_create(prog_fd, self.ifindex, _lib.BPF_XDP, ctypes.byref(opts))
        if fd in (-errno.EBUSY, -errno.EEXIST):  # a link / a netlink attachment is there
            raise AlreadyAttached(ifname, query(ifname, netns))
        if fd < 0:
            raise BpfError(-fd, f"XDP attach to {ifname}" + (f" in {mode} mode" if mode else ""))
        self.link_fd = fd
        self.actual_mode = query(ifname, netns).mode

    def detach(self) -> None:
        if self.link_fd >= 0:
            os.close(self.link_fd)
            self.link_fd = -1

    @property
    def attached(self) -> bool:
        return self.link_fd >= 0

    def __enter__(self) -> XdpAttachment:
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def __del__(self):
        self.detach()


def detach_any(ifname: str, netns: str | None = None) -> XdpState:
    """Remove whatever XDP program is on ifname (for --force): a legacy
    netlink attachment is detached, a link owned elsewhere is force-detached."""
    state = query(ifname, netns)
    if state.prog_id == 0:
        return state
    with entered(netns):
        idx = lookup_ifindex(ifname)
        ret = _lib.bpf_xdp_detach(idx, MODES.get(state.mode, 0), None)
    if ret == -errno.EBUSY:  # attached through a bpf_link: detach the link itself
        from .links import force_detach_xdp_link

        force_detach_xdp_link(state.prog_id)
    elif ret < 0:
        raise BpfError(-ret, f"XDP detach from {ifname}")
    return state
