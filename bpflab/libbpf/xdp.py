"""XDP attach / query / detach on an interface index of the calling
thread's network namespace (bpflab.loaders.interfaces does it by name, in
any namespace).

Attachments are bpf_links: the kernel detaches the program when the last fd
of the link closes, so a loader that exits, is interrupted or is killed
leaves nothing attached behind.
"""
from __future__ import annotations

import ctypes
import dataclasses
import errno
import os

from . import _lib
from .attachment import Attachment
from .errors import BpfError

MODES = {"native": _lib.XDP_FLAGS_DRV_MODE, "generic": _lib.XDP_FLAGS_SKB_MODE}
_MODE_NAMES = {
    _lib.XDP_ATTACHED_NONE: None,
    _lib.XDP_ATTACHED_DRV: "native",
    _lib.XDP_ATTACHED_SKB: "generic",
    _lib.XDP_ATTACHED_HW: "offload",
    _lib.XDP_ATTACHED_MULTI: "multi",
}


@dataclasses.dataclass(frozen=True)
class XdpState:
    mode: str | None  # native, generic, offload, multi or None
    prog_id: int


class AlreadyAttached(BpfError):
    """The interface has an XDP program already. `name` is what the caller
    calls the interface (the binding knows only its index)."""

    def __init__(self, ifindex: int, state: XdpState, name: str | None = None):
        self.ifindex, self.state, self.name = ifindex, state, name
        BpfError.__init__(self, errno.EBUSY, f"attach to ifindex {ifindex}")
        self.args = (errno.EBUSY, str(self))

    def __str__(self) -> str:
        where = f"interface '{self.name}'" if self.name else f"interface {self.ifindex}"
        return f"{where} already has an XDP program attached (prog id {self.state.prog_id}, {self.state.mode} mode)"


def query(ifindex: int) -> XdpState:
    opts = _lib.bpf_xdp_query_opts(sz=ctypes.sizeof(_lib.bpf_xdp_query_opts))
    ret = _lib.bpf_xdp_query(ifindex, 0, ctypes.byref(opts))
    if ret < 0:
        raise BpfError(-ret, f"XDP query on ifindex {ifindex}")
    return XdpState(_MODE_NAMES.get(opts.attach_mode, "unknown"), opts.prog_id)


class XdpLink(Attachment):
    """An XDP program attached to an interface through a bpf_link."""

    def __init__(self, prog_fd: int, ifindex: int, mode: str | None = None):
        if mode is not None and mode not in MODES:
            raise ValueError(f"unknown XDP mode '{mode}' (native or generic)")
        self.ifindex, self.link_fd = ifindex, -1
        opts = _lib.bpf_link_create_opts(sz=ctypes.sizeof(_lib.bpf_link_create_opts), flags=MODES.get(mode, 0))
        fd = _lib.bpf_link_create(prog_fd, ifindex, _lib.BPF_XDP, ctypes.byref(opts))
        if fd in (-errno.EBUSY, -errno.EEXIST):  # a link / a netlink attachment is there
            raise AlreadyAttached(ifindex, query(ifindex))
        if fd < 0:
            raise BpfError(-fd, f"XDP attach to ifindex {ifindex}" + (f" in {mode} mode" if mode else ""))
        self.link_fd = fd
        self.mode = query(ifindex).mode  # what the kernel chose

    def close(self) -> None:
        if self.link_fd >= 0:
            os.close(self.link_fd)
            self.link_fd = -1

    def __del__(self):  # an unclosed link's fd: the kernel detaches with it
        self.close()


def attach_legacy(prog_fd: int, ifindex: int, mode: str) -> None:
    """A netlink attachment, the way older tools attach: it is not a link
    and outlives the process that made it (detach_any removes it)."""
    ret = _lib.bpf_xdp_attach(ifindex, prog_fd, MODES[mode], None)
    if ret < 0:
        raise BpfError(-ret, f"XDP (netlink) attach to ifindex {ifindex}")


PROG_TYPE_XDP = 6
XDP_PASS = 2


def pass_program() -> int:
    """The fd of an XDP program of two instructions (r0 = XDP_PASS; exit),
    loaded with libbpf's bpf_prog_load: what a veth needs on older kernels
    to take frames redirected into it. The caller closes the fd."""
    mov_r0_imm = (0xB7).to_bytes(1, "little") + bytes(3) + XDP_PASS.to_bytes(4, "little")  # BPF_ALU64|BPF_MOV|BPF_K
    exit_ = (0x95).to_bytes(1, "little") + bytes(7)  # BPF_JMP|BPF_EXIT
    insns = ctypes.create_string_buffer(mov_r0_imm + exit_, 16)
    fd = _lib.bpf_prog_load(PROG_TYPE_XDP, b"bpflab_pass", b"GPL", ctypes.cast(insns, ctypes.c_void_p), 2, None)
    if fd < 0:
        raise BpfError(-fd, "loading an XDP pass program")
    return fd


def detach_any(ifindex: int) -> XdpState:
    """Remove whatever XDP program is on the interface (for --force): a
    legacy netlink attachment is detached, a link owned elsewhere is
    force-detached. Returns what was there."""
    state = query(ifindex)
    if state.prog_id == 0:
        return state
    ret = _lib.bpf_xdp_detach(ifindex, MODES.get(state.mode, 0), None)
    if ret == -errno.EBUSY:  # attached through a bpf_link: detach the link itself
        from .links import force_detach_xdp_link

        force_detach_xdp_link(state.prog_id)
    elif ret < 0:
        raise BpfError(-ret, f"XDP detach from ifindex {ifindex}")
    return state
