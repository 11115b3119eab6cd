"""What the running kernel is and whether bpflab's kernel tests can run on it."""
from __future__ import annotations

import os
import re


def version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of `release` (default: the running kernel's, uname -r)."""
    m = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    if m is None:
        raise ValueError(f"not a kernel release: {release!r}")
    return int(m.group(1)), int(m.group(2))


def problems() -> list[str]:
    """Why kernel tests cannot run here (empty: they can)."""
    found = []
    if os.geteuid() != 0:
        found.append("kernel tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN): run them as root")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        found.append("the kernel has no BTF (/sys/kernel/btf/vmlinux): the suite needs a BTF-enabled kernel")
    return found


class MissingFeature(RuntimeError):
    """The running kernel is older than a feature bpflab needs for this."""


# Kernel features some tests and commands need, with the release that brought
# them (the commit that did, where it matters). `since_kernel` markers and
# `require` use these, so one place says which kernel has what.
FEATURES: dict[str, tuple[str, str]] = {
    "veth_gro_napi": ("5.13", "a veth that takes frames XDP redirects into its peer with GRO on and no XDP "
                              "program (commit d3256efd8e8b)"),
    "percpu_array_batch": ("5.13", "batch operations on per-CPU arrays (BPF_MAP_LOOKUP_BATCH)"),
    "xdp_test_run_ctx": ("5.15", "XDP test-run with an input xdp_md (ingress_ifindex; commit 47316f4a3053)"),
    "xdp_test_run_frags": ("5.18", "XDP test-run of frames larger than a page (frags)"),
    "xdp_live_frames": ("5.18", "XDP test-run in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES)"),
    "tcx": ("6.6", "tcx links"),
    "skb_checksum_complete_test_run": ("6.11", "BPF_F_TEST_SKB_CHECKSUM_COMPLETE (test-run checks skb->csum)"),
}


def has(feature: str, release: str | None = None) -> bool:
    since, _ = FEATURES[feature]
    return version(release) >= tuple(int(x) for x in since.split("."))


def require(feature: str) -> None:
    """Raise MissingFeature, saying what and since when, on older kernels."""
    if not has(feature):
        since, what = FEATURES[feature]
        raise MissingFeature(f"this kernel ({os.uname().release}) lacks {what}, which came in {since}")
