"""Events from a ring buffer, read a batch at a time from the ring's mapped
pages (bpflab.libbpf.ringmap) into numpy arrays laid out as a ctypes mirror
that is checked against the object's BTF, plus the program's count of
events that found the ring full."""
from __future__ import annotations

import collections
import ctypes
import time
from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np

from bpflab.libbpf import BpfObject
from bpflab.libbpf.btf import check_mirror
from bpflab.libbpf.ringmap import MappedRing
from bpflab.loaders.base import Loader


class EventStream:
    """Every committed record leaves the ring as soon as it is read (the
    ring is never left full because the reader is behind on decoding);
    decoded events not handed out yet wait in order in `_pending`."""

    def __init__(self, obj: BpfObject, ring: str, drops: str, mirror: type[ctypes.Structure], c_name: str,
                 decode: Callable):
        check_mirror(obj.btf, c_name, mirror)  # a mismatch is loud, never garbage
        self._mirror, self._decode = mirror, decode
        self._pending: collections.deque = collections.deque()
        self._drops = obj.map(drops).bind(ctypes.c_uint32, ctypes.c_uint64)
        self._ring = MappedRing(obj.map(ring), np.dtype(mirror))

    def batches(self, timeout: float | None = None) -> Iterator[np.ndarray]:
        """Records as they arrive, one numpy array (the mirror's layout) per
        read; stops after `timeout` seconds without one (None: never)."""
        last = time.monotonic()
        while True:
            batch = self._ring.read()
            if len(batch):
                yield batch
                last = time.monotonic()
                continue
            if timeout is not None and time.monotonic() - last >= timeout:
                return
            self._ring.wait(0.1 if timeout is None else max(0.001, min(0.1, last + timeout - time.monotonic())))

    def decoded(self, batch: np.ndarray) -> list:
        """A batch as the loader's event objects, in order."""
        raw, size = batch.tobytes(), batch.dtype.itemsize
        return [self._decode(self._mirror.from_buffer_copy(raw, offset)) for offset in range(0, len(raw), size)]

    def events(self, timeout: float | None = None) -> Iterator:
        """Events as they arrive; stops after `timeout` seconds without one
        (None: never). Events a caller did not take stay for the next call."""
        while self._pending:
            yield self._pending.popleft()
        for batch in self.batches(timeout):
            self._pending.extend(self.decoded(batch))
            while self._pending:
                yield self._pending.popleft()

    def drain(self) -> list:
        """Every event already in the ring, without waiting."""
        out = list(self._pending)
        self._pending.clear()
        while len(batch := self._ring.read()):
            out += self.decoded(batch)
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

    def format_batch(self, records: np.ndarray, as_json: bool) -> list[str]:
        """The lines (or JSON lines) a batch of records prints as; loaders
        that stream fast override it with one that builds no event objects."""
        import json

        events = self.stream.decoded(records)
        return [json.dumps(e.as_json()) for e in events] if as_json else [e.line() for e in events]

    def detaching(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
