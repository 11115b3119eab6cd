"""mount(2) and umount2(2), and the pseudo filesystems bpflab needs."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from .paths import BPFFS, TRACEFS

MS_BIND = 4096
MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def mount(source: str, target: str | Path, fstype: str | None, flags: int = 0) -> None:
    if _libc.mount(source.encode(), os.fsencode(target), fstype.encode() if fstype else None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount {fstype or source} on {target}: {os.strerror(err)}")


def umount(target: str | Path, flags: int = MNT_DETACH) -> None:
    if _libc.umount2(os.fsencode(target), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot unmount {target}: {os.strerror(err)}")


def ensure_bpffs() -> None:
    """bpffs on /sys/fs/bpf (pinned maps live there)."""
    if not os.path.ismount(BPFFS):
        mount("bpf", BPFFS, "bpf")


def ensure_tracefs() -> None:
    """tracefs on /sys/kernel/tracing (bpf_printk's output)."""
    if not (TRACEFS / "instances").is_dir():
        mount("nodev", TRACEFS, "tracefs")
