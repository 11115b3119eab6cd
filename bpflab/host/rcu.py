"""An RCU grace period, waited for from user space.

BPF programs run inside RCU read-side sections (XDP in the NAPI softirq,
tc likewise), so when a grace period has passed after a store, every
program run that could have read the old value has ended, and every run
after it sees the store. The kernel's own map-in-map updates wait for one
for that reason (syscall.c: maybe_wait_bpf_programs); a loader that
switches between copies of data in a plain array needs the same wait, and
membarrier(2)'s MEMBARRIER_CMD_GLOBAL is synchronize_rcu() (one CPU: no
wait is needed, and the kernel does none).
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform

MEMBARRIER_CMD_GLOBAL = 1
SYS_MEMBARRIER = {"x86_64": 324, "aarch64": 283, "riscv64": 283, "ppc64le": 365, "s390x": 356}

_libc = ctypes.CDLL(None, use_errno=True)


def grace_period() -> None:
    """Return once every BPF program run that began before the call has
    ended. Raises OSError where the kernel cannot wait for one this way
    (nohz_full CPUs: EINVAL; no membarrier: ENOSYS)."""
    number = SYS_MEMBARRIER.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"membarrier: no system call number known for {platform.machine()}")
    if _libc.syscall(number, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"membarrier(MEMBARRIER_CMD_GLOBAL): {os.strerror(err)}")
