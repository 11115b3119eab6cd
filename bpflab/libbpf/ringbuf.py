"""Ring-buffer consumer: libbpf's ring_buffer with a Python callback."""
from __future__ import annotations

import ctypes
from collections.abc import Callable

from . import _lib
from .errors import BpfError
from .maps import Map

_PAUSE = -11  # -EAGAIN from a callback: libbpf stops after that record


class RingBuffer:
    """Calls `callback(bytes)` for each record. Use as a context manager.

    libbpf keeps consuming while records keep arriving, so under sustained
    load one poll would never return: a callback that returns True pauses
    the poll after its record (`paused` says so). An exception raised by the
    callback stops the poll too and is re-raised from poll()/consume(), so a
    bad record is never silently skipped."""

    def __init__(self, ring_map: Map, callback: Callable[[bytes], None]):
        if ring_map.type != _lib.BPF_MAP_TYPE_RINGBUF:
            raise TypeError(f"map '{ring_map.name}' is not a ring buffer")
        self._callback = callback
        self._error: BaseException | None = None
        self.paused = False
        self._c_callback = _lib.RING_SAMPLE_FN(self._on_sample)
        ptr = _lib.ring_buffer__new(ring_map.fd, self._c_callback, None, None)
        if not ptr:
            raise BpfError(ctypes.get_errno(), f"ring_buffer__new on '{ring_map.name}'")
        self._ptr = ptr

    def _on_sample(self, _ctx, data, size) -> int:
        try:
            return _PAUSE if self._callback(ctypes.string_at(data, size)) else 0
        except BaseException as exc:  # surfaced by _check
            self._error = exc
            return -1

    def _check(self, ret: int, what: str) -> int:
        self.paused = ret == _PAUSE and self._error is None
        if self.paused:
            return 0
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if ret < 0 and ret != -4:  # EINTR: a signal arrived, let the caller decide
            raise BpfError(-ret, what)
        return max(ret, 0)

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to timeout_ms for records; returns how many were consumed."""
        return self._check(_lib.ring_buffer__poll(self._ptr, timeout_ms), "ring_buffer__poll")

    def consume(self) -> int:
        """Consume whatever is there, without waiting."""
        return self._check(_lib.ring_buffer__consume(self._ptr), "ring_buffer__consume")

    def close(self) -> None:
        if self._ptr:
            _lib.ring_buffer__free(self._ptr)
            self._ptr = None

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()
