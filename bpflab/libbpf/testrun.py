"""BPF_PROG_TEST_RUN: run a loaded program on a buffer, in the kernel."""
from __future__ import annotations

import ctypes
import dataclasses
import os

from . import _lib
from .errors import BpfError

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
# test-run flags: live frames (XDP programs send what they return XDP_TX or
# XDP_REDIRECT for, as a packet generator does), a CHECKSUM_COMPLETE skb (6.11+)
BPF_F_TEST_XDP_LIVE_FRAMES = _lib.BPF_F_TEST_XDP_LIVE_FRAMES
BPF_F_TEST_SKB_CHECKSUM_COMPLETE = 1 << 2
XDP_ACTIONS = {XDP_ABORTED: "XDP_ABORTED", XDP_DROP: "XDP_DROP", XDP_PASS: "XDP_PASS", XDP_TX: "XDP_TX", XDP_REDIRECT: "XDP_REDIRECT"}


class xdp_md(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_uint32),
        ("data_end", ctypes.c_uint32),
        ("data_meta", ctypes.c_uint32),
        ("ingress_ifindex", ctypes.c_uint32),
        ("rx_queue_index", ctypes.c_uint32),
        ("egress_ifindex", ctypes.c_uint32),
    ]


@dataclasses.dataclass
class TestRunResult:
    retval: int
    data: bytes
    duration_ns: int  # average per repetition, as the kernel reports it

    @property
    def action(self) -> str:
        return XDP_ACTIONS.get(self.retval, str(self.retval))


def test_run(
    prog_fd: int,
    data: bytes = b"",
    *,
    repeat: int = 1,
    ctx: ctypes.Structure | None = None,
    flags: int = 0,
    cpu: int | None = None,
    batch_size: int = 0,
    out_size: int | None = None,
) -> TestRunResult:
    """Run the program on `data`; returns its return code, the data it left
    and the kernel's average duration. `cpu` runs it on that CPU: the kernel
    supports BPF_F_TEST_RUN_ON_CPU only for tracing programs, so for XDP the
    calling thread is pinned there for the duration of the call."""
    if cpu is not None:
        saved = os.sched_getaffinity(0)  # 0: the calling thread
        os.sched_setaffinity(0, {cpu})
        try:
            return test_run(prog_fd, data, repeat=repeat, ctx=ctx, flags=flags, batch_size=batch_size,
                            out_size=out_size)
        finally:
            os.sched_setaffinity(0, saved)
    data_in = ctypes.create_string_buffer(bytes(data), len(data))
    # Room for programs that grow the frame (XDP headroom/tailroom).
    out_len = out_size if out_size is not None else len(data) + 512
    data_out = ctypes.create_string_buffer(out_len) if out_len else None
    opts = _lib.bpf_test_run_opts(sz=ctypes.sizeof(_lib.bpf_test_run_opts))
    if data:
        opts.data_in = ctypes.cast(data_in, ctypes.c_void_p)
        opts.data_size_in = len(data)
    if data_out is not None:
        opts.data_out = ctypes.cast(data_out, ctypes.c_void_p)
        opts.data_size_out = out_len
    if ctx is not None:
        opts.ctx_in = ctypes.cast(ctypes.pointer(ctx), ctypes.c_void_p)
        opts.ctx_size_in = ctypes.sizeof(ctx)
    opts.repeat = repeat
    opts.flags = flags
    opts.batch_size = batch_size
    ret = _lib.bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts))
    if ret < 0:
        raise BpfError(-ret, "BPF_PROG_TEST_RUN")
    out = data_out.raw[: opts.data_size_out] if data_out is not None else b""
    return TestRunResult(opts.retval, out, opts.duration)
