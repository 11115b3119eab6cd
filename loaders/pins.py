"""Per-instance bpffs directories for loaders whose maps other commands
change while they run (xdp_dnat's services).

An instance is one loader on one interface of one namespace. It holds an
flock on /run/bpflab/instances/NAME.lock while it runs and pins its maps
under /sys/fs/bpf/bpflab-instances/NAME/. A second loader on the same
interface finds the lock taken; pins whose lock is free belong to a loader
that died (SIGKILL) and are removed by the next one.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import shutil
from pathlib import Path

BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "bpflab-instances"
LOCK_ROOT = Path("/run/bpflab/instances")


class InstanceBusy(RuntimeError):
    pass


class NoInstance(LookupError):
    pass


def ensure_bpffs() -> None:
    if os.path.ismount(BPFFS):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mount(b"bpf", str(BPFFS).encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount bpffs on {BPFFS}: {os.strerror(err)}")


def instance_name(program: str, iface: str, netns: str | None) -> str:
    return f"{program}@{netns or 'root'}@{iface}"


def describe(program: str, iface: str, netns: str | None) -> str:
    return f"{program} on {iface}" + (f" in netns {netns}" if netns else "")


class Instance:
    """This process's claim on (program, netns, iface) and its pin directory."""

    def __init__(self, program: str, iface: str, netns: str | None):
        ensure_bpffs()
        self.name = instance_name(program, iface, netns)
        self.pin_dir = PIN_ROOT / self.name
        LOCK_ROOT.mkdir(parents=True, exist_ok=True)
        self._lock_path = LOCK_ROOT / f"{self.name}.lock"
        fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode().strip() or "?"
            os.close(fd)
            raise InstanceBusy(f"{describe(program, iface, netns)} is already running (pid {owner})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd
        # Pins left by an instance that was killed: ours now.
        self.stale = self.pin_dir.exists()
        if self.stale:
            shutil.rmtree(self.pin_dir, ignore_errors=True)
        self.pin_dir.mkdir(parents=True)

    def pin_path(self, map_name: str) -> Path:
        return self.pin_dir / map_name

    def release(self) -> None:
        if self._lock_fd is None:
            return
        shutil.rmtree(self.pin_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.pin_dir.parent.rmdir()  # only if empty
        with contextlib.suppress(FileNotFoundError):
            self._lock_path.unlink()
        os.close(self._lock_fd)
        self._lock_fd = None


def running_pin_dir(program: str, iface: str, netns: str | None) -> Path:
    """The pin directory of a running instance, for commands that change it."""
    name = instance_name(program, iface, netns)
    lock = LOCK_ROOT / f"{name}.lock"
    pin_dir = PIN_ROOT / name
    if not alive(lock) or not pin_dir.is_dir():
        raise NoInstance(f"no {describe(program, iface, netns)} is running")
    return pin_dir


def alive(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def dead_instances() -> list[Path]:
    """Pin directories whose loader is gone (for the leak guard and sweeps)."""
    if not PIN_ROOT.is_dir():
        return []
    return [d for d in PIN_ROOT.iterdir() if not alive(LOCK_ROOT / f"{d.name}.lock")]


def sweep_dead() -> list[str]:
    """Remove the pins and lock files of instances whose loader is gone."""
    removed = []
    for d in dead_instances():
        shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (LOCK_ROOT / f"{d.name}.lock").unlink()
        removed.append(d.name)
    return removed
