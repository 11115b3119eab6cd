"""TraceInstance.lines: every wait ends. A file that says "ready" and then
reads nothing (EAGAIN) must not start the silence again, and lines that
arrive are yielded whole and in order (an OS pipe stands in for trace_pipe:
the reading code sees the same non-blocking file descriptor)."""
import os
import time

import pytest

from bpflab.host import tracefs
from bpflab.host.tracefs import TraceInstance


def reader_of(fd: int) -> TraceInstance:
    # Not __init__: that makes a tracefs instance; the reading needs only the fd.
    trace = object.__new__(TraceInstance)
    trace._fd = fd  # noqa: SLF001 - the file the instance would have opened
    trace._pending = b""  # noqa: SLF001
    return trace


@pytest.fixture
def pipe():
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


def test_lines_come_whole_and_in_order_and_silence_ends_the_wait(pipe):
    read_end, write_end = pipe
    os.write(write_end, b"one\ntw")
    os.write(write_end, b"o\n\nthree\npartial")
    start = time.monotonic()
    assert list(reader_of(read_end).lines(timeout=0.2)) == ["one", "two", "three"]
    assert 0.2 <= time.monotonic() - start < 2


def test_a_file_that_is_ready_but_empty_ends_the_wait_on_time(pipe, monkeypatch):
    read_end, _ = pipe
    calls = []

    def always_ready(rlist, wlist, xlist, timeout=None):
        calls.append(timeout)
        if len(calls) > 1000:
            raise AssertionError("select() asked 1000 times: the wait never ends")
        return rlist, [], []

    monkeypatch.setattr(tracefs.select, "select", always_ready)
    start = time.monotonic()
    assert list(reader_of(read_end).lines(timeout=0.3)) == []
    assert 0.3 <= time.monotonic() - start < 2
    # Each wait asks for what is left of the silence, never the whole again.
    assert calls[-1] < 0.3 and calls == sorted(calls, reverse=True)
