"""Events from a ring buffer, decoded through a ctypes mirror that is
checked against the object's BTF, plus the program's count of events that
found the ring full."""
from __future__ import annotations

import collections
import ctypes
import time
from collections.abc import Callable, Iterator
from typing import ClassVar

from bpflab.libbpf import BpfObject, RingBuffer
from bpflab.libbpf.btf import LayoutMismatch, check_mirror
from bpflab.loaders.base import Loader


class EventStream:
    HIGH_WATER = 4096  # decoded events held before the ring is left alone

    def __init__(self, obj: BpfObject, ring: str, drops: str, mirror: type[ctypes.Structure], c_name: str,
                 decode: Callable):
        check_mirror(obj.btf, c_name, mirror)  # a mismatch is loud, never garbage
        self._mirror, self._decode = mirror, decode
        self._queue: collections.deque = collections.deque()
        self._drops = obj.map(drops).bind(ctypes.c_uint32, ctypes.c_uint64)
        self._ring = RingBuffer(obj.map(ring), self._on_record)

    def _on_record(self, raw: bytes) -> bool:
        if len(raw) != ctypes.sizeof(self._mirror):
            raise LayoutMismatch(f"ring record of {len(raw)} bytes, {self._mirror.__name__} is "
                                 f"{ctypes.sizeof(self._mirror)}")
        self._queue.append(self._decode(self._mirror.from_buffer_copy(raw)))
        return len(self._queue) >= self.HIGH_WATER  # pause: let the reader catch up

    def events(self, timeout: float | None = None) -> Iterator:
        """Events as they arrive; stops after `timeout` seconds without one
        (None: never)."""
        last = time.monotonic()
        while True:
            while self._queue:
                yield self._queue.popleft()
                last = time.monotonic()
            if timeout is not None and time.monotonic() - last >= timeout:
                return
            wait_ms = 100 if timeout is None else max(1, min(100, int((last + timeout - time.monotonic()) * 1000)))
            self._ring.poll(wait_ms)

    def drain(self) -> list:
        """Every event already in the ring, without waiting."""
        out = []
        while True:
            self._ring.consume()
            out += self._queue
            self._queue.clear()
            if not self._ring.paused:
                return out

    def drops(self) -> int:
        """Events the program could not emit because the ring was full."""
        return sum(self._drops.lookup(0))

    def close(self) -> None:
        self._ring.close()


class StreamingLoader(Loader):
    """A loader whose program streams events through a ring buffer: the
    ring, the drop counter and the event's ctypes mirror (checked against
    the C struct `event_c_name` in the object's BTF) are class attributes."""

    ring: ClassVar[str]
    drops: ClassVar[str]
    event_mirror: ClassVar[type[ctypes.Structure]]
    event_c_name: ClassVar[str]

    @staticmethod
    def decode(raw):
        raise NotImplementedError

    @classmethod
    def stream_of(cls, obj: BpfObject) -> EventStream:
        """The event stream of a loaded object (attached or not: test-run)."""
        return EventStream(obj, cls.ring, cls.drops, cls.event_mirror, cls.event_c_name, cls.decode)

    def __init__(self, iface: str, **kwargs):
        self.stream: EventStream | None = None
        super().__init__(iface, **kwargs)

    def setup(self, obj: BpfObject) -> None:
        self.stream = self.stream_of(obj)

    def events(self, timeout: float | None = None) -> Iterator:
        """Events as plain objects, as they arrive."""
        return self.stream.events(timeout)

    def teardown(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
