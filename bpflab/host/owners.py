"""Owners: processes that make things on this host (labs: namespaces, pins,
processes) and must not leave them behind.

An owner holds the lock /run/bpflab/owners/PID.lock for its lifetime, names
what it makes PREFIX + "PID-N-..." and marks the processes it starts with
BPFLAB_OWNER=PID. When its lock is free the owner is dead, however it died,
and bpflab.host.leftovers may remove what it left.
"""
from __future__ import annotations

import atexit
import itertools
import os
import re
from pathlib import Path

from .locks import LockFile, held
from .paths import PREFIX, STATE_DIR

OWNERS_DIR = STATE_DIR / "owners"
OWNER_ENV = "BPFLAB_OWNER"
_OWNED_NAME = re.compile(rf"^{PREFIX}(\d+)-")


class Owner:
    """This process, as an owner."""

    def __init__(self):
        self.pid = os.getpid()
        self._lock = LockFile(lock_path(self.pid))
        self._seq = itertools.count(1)
        atexit.register(self.release)

    def release(self) -> None:
        """At exit (what we made is gone by then: the lab's own atexit)."""
        if os.getpid() == self.pid:
            self._lock.release()

    def new_prefix(self) -> str:
        """A name prefix no other lab, of this owner or another, uses."""
        return f"{PREFIX}{self.pid}-{next(self._seq)}"


_owner: Owner | None = None


def current() -> Owner:
    """The owner for this process (made once; a forked child makes its own)."""
    global _owner
    if _owner is None or _owner.pid != os.getpid():
        _owner = Owner()
    return _owner


def lock_path(pid: int) -> Path:
    return OWNERS_DIR / f"{pid}.lock"


def alive(pid: int) -> bool:
    """Whether owner `pid` lives: it holds its lock (or, having made no
    lock, its process still exists)."""
    if pid == os.getpid():
        return True
    path = lock_path(pid)
    if not path.exists():
        return Path(f"/proc/{pid}").exists()
    return held(path)


def owner_of(name: str) -> int | None:
    """The owner pid in a name made by new_prefix(), or None."""
    m = _OWNED_NAME.match(name)
    return int(m.group(1)) if m else None


def known_owners() -> list[int]:
    """Every pid with a lock file (alive or not)."""
    if not OWNERS_DIR.is_dir():
        return []
    return sorted(int(p.stem) for p in OWNERS_DIR.glob("*.lock") if p.stem.isdigit())
