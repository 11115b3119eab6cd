"""Who owns which lab, and the sweep that removes the labs of dead owners.

Every process that builds labs is an owner. It holds an flock on
/run/bpflab/owners/PID.lock for as long as it lives and names everything it
makes `bpflab-PID-...` (namespaces in /run/netns, pins in /sys/fs/bpf) and
marks the processes it starts with BPFLAB_OWNER=PID. When the lock can be
taken, the owner is dead, whatever happened to it (even SIGKILL), and its
leftovers can be swept without touching the labs of live owners.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import os
import re
import shutil
import signal
import time
from pathlib import Path

from bpflab.lab.patience import patience
from pyroute2 import netns as pr_netns

STATE_DIR = Path("/run/bpflab")
OWNERS_DIR = STATE_DIR / "owners"
NETNS_DIR = Path("/run/netns")
BPFFS = Path("/sys/fs/bpf")
PREFIX = "bpflab-"
OWNER_ENV = "BPFLAB_OWNER"
_OWNED = re.compile(rf"^{PREFIX}(\d+)-")


class Owner:
    """This process, as an owner of labs."""

    def __init__(self):
        self.pid = os.getpid()
        OWNERS_DIR.mkdir(parents=True, exist_ok=True)
        # Lock first, then rename into place: a sweeper never sees an
        # unlocked lock file of a live owner.
        tmp = OWNERS_DIR / f".{self.pid}.lock.tmp"
        self._lock_fd = os.open(tmp, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        os.replace(tmp, self.lock_path)
        self._seq = itertools.count(1)
        atexit.register(self.release)

    def release(self) -> None:
        """At exit: our labs are gone (builder's atexit), so is our lock file."""
        if os.getpid() == self.pid:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()

    @property
    def lock_path(self) -> Path:
        return OWNERS_DIR / f"{self.pid}.lock"

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


def owner_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    lock = OWNERS_DIR / f"{pid}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return Path(f"/proc/{pid}").exists()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def netns_inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def pids_in_netns(inodes: set[int]) -> list[int]:
    """Processes whose network namespace is one of `inodes`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if os.stat(entry / "ns/net").st_ino in inodes:
                found.append(int(entry.name))
    return found


def marked_processes() -> dict[int, int]:
    """{pid: owner pid} of every process started by some lab (they carry
    the owner's marker in their environment)."""
    prefix = f"{OWNER_ENV}=".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError, ValueError):
            for var in (entry / "environ").read_bytes().split(b"\0"):
                if var.startswith(prefix):
                    found[int(entry.name)] = int(var[len(prefix):])
    return found


def pids_marked(owner_pid: int) -> list[int]:
    """Processes started by owner_pid's labs."""
    return [p for p, o in marked_processes().items() if o == owner_pid]


def has_exited(pid: int) -> bool:
    """Gone, or a zombie waiting for its parent (it holds no namespace)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def kill_all(pids: list[int]) -> None:
    """SIGKILL each process and wait until it has exited: SIGKILL is
    delivered asynchronously, and a namespace lives on while a process in it
    is still dying."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + patience(5)
    pending = list(pids)
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if not has_exited(pid)]
        if pending:
            time.sleep(0.01)


def remove_netns(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        pr_netns.remove(name)


def remove_pin_dir(path: Path) -> None:
    # bpffs has no recursive removal: unlink files, then directories.
    shutil.rmtree(path, ignore_errors=True)


def destroy(netns_names: list[str], pin_dirs: list[Path], owner_pid: int | None = None) -> None:
    """Kill what lives in the namespaces, then remove namespaces and pins."""
    inodes = {ino for n in netns_names if (ino := netns_inode(NETNS_DIR / n)) is not None}
    victims = pids_in_netns(inodes) if inodes else []
    if owner_pid is not None:
        victims += pids_marked(owner_pid)
    kill_all(sorted(set(victims)))
    for name in netns_names:
        remove_netns(name)
    for pin in pin_dirs:
        remove_pin_dir(pin)


def sweep() -> list[str]:
    """Remove everything left by owners that are no longer alive. Returns
    the names of what was removed."""
    by_owner: dict[int, tuple[list[str], list[Path]]] = {}
    for d, is_ns in ((NETNS_DIR, True), (BPFFS, False)):
        if not d.is_dir():
            continue
        for entry in d.iterdir():
            m = _OWNED.match(entry.name)
            if m:
                names, pins = by_owner.setdefault(int(m.group(1)), ([], []))
                (names.append(entry.name) if is_ns else pins.append(entry))
    if OWNERS_DIR.is_dir():
        for lock in OWNERS_DIR.glob("*.lock"):
            if lock.stem.isdigit():
                by_owner.setdefault(int(lock.stem), ([], []))
    removed: list[str] = []
    for pid, (names, pins) in sorted(by_owner.items()):
        if owner_alive(pid):
            continue
        destroy(names, pins, owner_pid=pid)
        with contextlib.suppress(FileNotFoundError):
            (OWNERS_DIR / f"{pid}.lock").unlink()
        removed += names + [p.name for p in pins]
    return removed
