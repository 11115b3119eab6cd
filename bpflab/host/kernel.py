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
