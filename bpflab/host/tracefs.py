"""A private tracefs instance that receives bpf_printk output.

trace_pipe is one machine-wide buffer and reading it consumes lines, so two
readers would steal each other's lines. bpf_trace_printk is also a trace
event, and every tracefs instance that enables it gets its own copy.
"""
from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Iterator
from pathlib import Path

from .mounts import ensure_tracefs
from .paths import PREFIX, TRACEFS


def dead_instances() -> list[Path]:
    """Instances (named PREFIX...-PID) whose process no longer exists."""
    instances = TRACEFS / "instances"
    if not instances.is_dir():
        return []
    return [inst for inst in instances.glob(f"{PREFIX}*")
            if (pid := inst.name.rsplit("-", 1)[-1]).isdigit() and not Path(f"/proc/{pid}").exists()]


def remove(instance: Path) -> None:
    with contextlib.suppress(OSError):
        instance.rmdir()


class TraceInstance:
    """Collect bpf_printk lines whose text matches `glob` (a tracefs filter)."""

    def __init__(self, owner: str, glob: str | None = None):
        ensure_tracefs()
        for dead in dead_instances():
            remove(dead)
        self.path = TRACEFS / "instances" / f"{PREFIX}{owner}-{os.getpid()}"
        self.path.mkdir()
        try:
            event = self.path / "events/bpf_trace/bpf_trace_printk"
            if glob:
                (event / "filter").write_text(f'bpf_string ~ "{glob}"')
            (event / "enable").write_text("1")
            self._fd = os.open(self.path / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        except BaseException:
            self.close()
            raise
        self._pending = b""

    def lines(self, timeout: float | None = None) -> Iterator[str]:
        """Yield trace lines as they come; stop after `timeout` seconds of
        silence (None: never)."""
        # The silence is measured against a deadline, not select()'s own
        # timeout: a wake-up that reads nothing (EAGAIN) must not start the
        # wait again, or a file that keeps saying "ready" waits forever.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                return
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                time.sleep(0.01)  # ready but empty: do not spin
                continue
            self._pending += chunk
            *complete, self._pending = self._pending.split(b"\n")
            lines = [line.decode(errors="replace").rstrip() for line in complete if line.strip()]
            yield from lines
            if lines and deadline is not None:
                deadline = time.monotonic() + timeout

    def close(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            (self.path / "events/bpf_trace/bpf_trace_printk/enable").write_text("0")
        with contextlib.suppress(FileNotFoundError):
            self.path.rmdir()

    def __enter__(self) -> TraceInstance:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
