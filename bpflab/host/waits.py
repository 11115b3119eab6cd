"""Waits that always end, and how long to wait before calling something hung.

The same suite runs on the host and inside emulated VMs (the kernel matrix),
where every process starts and runs 10-20x slower. Waits that detect a hang
scale with BPFLAB_TIME_SCALE (set by bpflab.kernels.matrix inside its VMs); waits
that prove something does *not* happen stay as they are: a longer quiet
window only costs time, a shorter one would hide nothing.

Every wait here has a bound and, when it runs out, says what it waited for:
a broken program must fail the suite, never hang it."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import IO, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited."""


def scale() -> float:
    value = os.environ.get("BPFLAB_TIME_SCALE", "1")
    try:
        factor = float(value)
    except ValueError:
        raise ValueError(f"BPFLAB_TIME_SCALE must be a number, not {value!r}") from None
    if factor < 1:
        raise ValueError(f"BPFLAB_TIME_SCALE must be at least 1, not {value!r}")
    return factor


def scaled_timeout(seconds: float) -> float:
    """`seconds` on this machine's time scale."""
    return seconds * scale()


def wait_until(predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 0.01) -> T:
    """The first truthy value of predicate(), polled every `interval` s;
    WaitTimeout after `timeout` s (scaled) naming `what` and the last value."""
    limit = scaled_timeout(timeout)
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"waited {limit:g} s for {what}; last saw {value!r}")
        time.sleep(interval)


def settle(read: Callable[[], T], want: T, *, timeout: float = 2.0, interval: float = 0.02) -> T:
    """read() until it equals `want` or `timeout` s (scaled) pass; returns
    the last value, so the caller's `assert settle(...) == want` shows the diff."""
    deadline = time.monotonic() + scaled_timeout(timeout)
    while (got := read()) != want and time.monotonic() < deadline:
        time.sleep(interval)
    return got


def read_line(stream: IO[str], *, timeout: float, what: str) -> str:
    """One line from a process's pipe within `timeout` s (scaled), or
    WaitTimeout. A process that hangs without printing cannot hang the
    caller: the read runs in a helper thread that ends when the pipe closes."""
    box: list = []

    def reader() -> None:
        try:
            box.append(stream.readline())
        except BaseException as exc:  # handed to the waiting thread
            box.append(exc)

    thread = threading.Thread(target=reader, daemon=True, name="read-line")
    thread.start()
    thread.join(scaled_timeout(timeout))
    if not box:
        raise WaitTimeout(f"waited {scaled_timeout(timeout):g} s for a line from {what}; none came")
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]
