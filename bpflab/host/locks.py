"""Lock files that say "I am alive": a process holds an flock on its lock
file for as long as it lives. Whoever can take the lock knows the holder is
dead, however it died (SIGKILL included): the kernel drops the lock with the
process. Lab owners and loader instances both use this."""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class LockHeld(RuntimeError):
    """Someone alive holds the lock; `holder` is the pid it wrote, or "?"."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by pid {holder}")
        self.path, self.holder = path, holder


class LockFile:
    """Hold an flock on `path` (created if missing) and write our pid into
    it, or raise LockHeld. `release()` removes the file."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Lock a private name first, then rename it into place: whoever sees
        # the file under its real name sees it locked.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            if not _link_if_free(tmp, path):
                raise LockHeld(path, holder(path))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        tmp.unlink()
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _link_if_free(tmp: Path, path: Path) -> bool:
    """Put our locked file at `path`, unless a live holder's file is there.
    A file whose lock can be taken belongs to the dead: it is replaced."""
    for _ in range(3):
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            if held(path):
                return False
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return False


def held(path: Path) -> bool:
    """Whether a live process holds the lock at `path` (a missing file: no)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def holder(path: Path) -> str:
    """The pid the holder wrote into its lock file, or "?"."""
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"
