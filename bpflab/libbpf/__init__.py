"""A small typed Python layer over the system libbpf (libbpf.so.1).

libbpf does the ELF loading, relocation and BTF work; this package only
gives it Python types and deterministic cleanup.
"""
from .attachment import Attachment
from .errors import BatchError, BpfError, NotSupported, VerifierError
from .maps import BPF_ANY, BPF_EXIST, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_NOEXIST, Map, possible_cpus
from .object import BpfObject, Program
from .ringbuf import RingBuffer
from .tc import TcAttachment
from .testrun import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, TestRunResult, test_run, xdp_md
from .xdp import AlreadyAttached, XdpLink, XdpState
from .xdp import query as xdp_query

__all__ = [
    "AlreadyAttached", "BatchError", "NotSupported", "BPF_ANY", "BPF_EXIST", "BPF_MAP_TYPE_ARRAY", "BPF_MAP_TYPE_PERCPU_ARRAY", "BPF_NOEXIST", "BpfError", "BpfObject", "Map", "Program",
    "RingBuffer", "TestRunResult", "VerifierError", "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_REDIRECT",
    "XDP_TX", "Attachment", "TcAttachment", "XdpLink", "XdpState", "possible_cpus", "test_run", "xdp_md",
    "xdp_query",
]
