"""Per-instance bpffs directories for loaders whose maps other commands
change while they run (xdp_dnat's services).

An instance is one loader on one interface of one namespace. It holds the
lock /run/bpflab/instances/NAME.lock while it runs and pins its maps under
/sys/fs/bpf/bpflab-instances/NAME/. A second loader on the same interface
finds the lock held; pins whose lock is free belong to a loader that died
(SIGKILL) and are removed by the next one, or by a sweep.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from .locks import LockFile, LockHeld, held
from .mounts import ensure_bpffs
from .paths import BPFFS, PREFIX, STATE_DIR

PIN_ROOT = BPFFS / f"{PREFIX}instances"
LOCK_ROOT = STATE_DIR / "instances"


class InstanceBusy(RuntimeError):
    pass


class NoInstance(LookupError):
    pass


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
        try:
            self._lock: LockFile | None = LockFile(LOCK_ROOT / f"{self.name}.lock")
        except LockHeld as exc:
            raise InstanceBusy(f"{describe(program, iface, netns)} is already running (pid {exc.holder})") from None
        # Pins left by an instance that was killed: ours now.
        self.stale = self.pin_dir.exists()
        if self.stale:
            shutil.rmtree(self.pin_dir, ignore_errors=True)
        self.pin_dir.mkdir(parents=True)

    def pin_path(self, map_name: str) -> Path:
        return self.pin_dir / map_name

    def release(self) -> None:
        if self._lock is None:
            return
        shutil.rmtree(self.pin_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.pin_dir.parent.rmdir()  # only if empty
        self._lock.release()
        self._lock = None


def running_pin_dir(program: str, iface: str, netns: str | None) -> Path:
    """The pin directory of a running instance, for commands that change it."""
    name = instance_name(program, iface, netns)
    pin_dir = PIN_ROOT / name
    if not held(LOCK_ROOT / f"{name}.lock") or not pin_dir.is_dir():
        raise NoInstance(f"no {describe(program, iface, netns)} is running")
    return pin_dir


def dead() -> list[Path]:
    """Pin directories whose loader is gone."""
    if not PIN_ROOT.is_dir():
        return []
    return [d for d in PIN_ROOT.iterdir() if not held(LOCK_ROOT / f"{d.name}.lock")]


def remove(pin_dir: Path) -> None:
    """A dead instance's pins and lock file."""
    shutil.rmtree(pin_dir, ignore_errors=True)
    (LOCK_ROOT / f"{pin_dir.name}.lock").unlink(missing_ok=True)
