"""A BPF ring buffer read straight from its mapped pages, a batch at a time.

libbpf's ring_buffer__poll calls back once per record; from Python that is
one ctypes call, one bytes object and one decode per event, about 170k
events/s here. The ring's pages can be mapped instead (what libbpf itself
does underneath), and every record of fixed size that is committed between
the consumer and producer positions read as one numpy array, then given
back to the kernel with one store of the consumer position.

The layout is the kernel's (kernel/bpf/ringbuf.c): page 0 holds the
consumer position (the only page user space may write), page 1 the
producer position, and the data area follows, mapped twice in a row so a
record that wraps around the end is still contiguous. Each record starts
with an 8-byte header: its length, with bit 31 set while the producer has
not committed it yet (BUSY) and bit 30 if it discarded it; then the
sample, padded to 8 bytes.
"""
from __future__ import annotations

import mmap
import select

import numpy as np

from . import _lib
from .btf import LayoutMismatch
from .maps import Map

BUSY = 1 << 31
DISCARD = 1 << 30
HEADER_BYTES = 8


class RecordSizeMismatch(LayoutMismatch):
    """A committed record whose length is not the one the reader decodes."""


def record_stride(sample_bytes: int) -> int:
    return (HEADER_BYTES + sample_bytes + 7) & ~7


class MappedRing:
    """Batches of fixed-size records out of a ring buffer map.

    `sample_dtype` is the record's numpy dtype (np.dtype(ctypes mirror)
    gives one with the C layout). read() returns every committed record
    there is, as a fresh array (the ring's space is handed back at once);
    wait() blocks until the kernel signals data. Use as a context manager."""

    def __init__(self, ring_map: Map, sample_dtype: np.dtype):
        if ring_map.type != _lib.BPF_MAP_TYPE_RINGBUF:
            raise TypeError(f"map '{ring_map.name}' is not a ring buffer")
        self.name = ring_map.name
        self.sample_bytes = sample_dtype.itemsize
        self.stride = record_stride(self.sample_bytes)
        self.size = ring_map.info().max_entries  # the data area, as the kernel has it
        self._mask = self.size - 1
        page = mmap.PAGESIZE
        fd = ring_map.fd
        self._consumer_page = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._producer_pages = mmap.mmap(fd, page + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._consumer_pos = np.frombuffer(self._consumer_page, dtype=np.uint64, count=1)
        self._producer_pos = np.frombuffer(self._producer_pages, dtype=np.uint64, count=1)
        self._data = np.frombuffer(self._producer_pages, dtype=np.uint8, offset=page)
        self._record_dtype = np.dtype({"names": ["len", "sample"], "formats": ["<u4", sample_dtype],
                                       "offsets": [0, HEADER_BYTES], "itemsize": self.stride})
        self._empty = np.empty(0, dtype=sample_dtype)
        self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLIN)

    def available_bytes(self) -> int:
        return int(self._producer_pos[0]) - int(self._consumer_pos[0])

    def read(self) -> np.ndarray:
        """Every record committed so far, in order, as one array; stops
        before the first record a producer is still writing. A record of
        another length raises RecordSizeMismatch (never decoded as
        garbage); discarded records are skipped."""
        parts = []
        while True:
            consumer = int(self._consumer_pos[0])
            # x86 and arm64 alike: the producer position is read before any
            # header; the kernel publishes it after reserving, and clears a
            # header's BUSY bit with a release store when it commits.
            producer = int(self._producer_pos[0])
            count = (producer - consumer) // self.stride
            if count == 0:
                if producer != consumer:
                    self._check_header(consumer)
                break
            start = consumer & self._mask
            records = self._data[start:start + count * self.stride].view(self._record_dtype)
            # One snapshot of the headers: a producer may commit a record
            # between two reads of its header (BUSY, then not).
            lengths = records["len"].copy()
            odd = np.flatnonzero(lengths != self.sample_bytes)
            good = count if odd.size == 0 else int(odd[0])
            if good:
                parts.append(records["sample"][:good].copy())
            skip = 0
            if good < count:
                header = int(lengths[good])
                if header & BUSY:
                    self._release(consumer + good * self.stride)
                    break
                if header & DISCARD and header & ~DISCARD == self.sample_bytes:
                    skip = 1
                else:
                    self._release(consumer + good * self.stride)
                    raise RecordSizeMismatch(self._mismatch(header))
            self._release(consumer + (good + skip) * self.stride)
            if skip:
                continue  # past a discarded record: the rest of this batch
            if producer - consumer > count * self.stride:
                self._check_header(consumer + count * self.stride)
            break
        if not parts:
            return self._empty
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _check_header(self, position: int) -> None:
        """A partial record at `position` (less than a stride committed
        after it): fine while BUSY, a layout error otherwise."""
        header = int(self._data[position & self._mask:(position & self._mask) + 4].view("<u4")[0])
        if not header & BUSY and header & ~DISCARD != self.sample_bytes:
            raise RecordSizeMismatch(self._mismatch(header))

    def _mismatch(self, header: int) -> str:
        return (f"ring '{self.name}': a record of {header & ~(BUSY | DISCARD)} bytes, the reader decodes "
                f"{self.sample_bytes}-byte records")

    def _release(self, position: int) -> None:
        # One aligned 8-byte store: the kernel may now reuse the space.
        self._consumer_pos[0] = position

    def wait(self, timeout_s: float) -> bool:
        """Block until the kernel wakes readers of this ring or timeout_s
        passes; True if records are available."""
        if self.available_bytes() >= self.stride:
            return True
        try:
            self._epoll.poll(max(timeout_s, 0))
        except InterruptedError:
            pass
        return self.available_bytes() >= self.stride

    def close(self) -> None:
        if self._epoll is None:
            return
        self._epoll.close()
        self._epoll = None
        # numpy views keep the mappings referenced; drop them first.
        self._consumer_pos = self._producer_pos = self._data = None
        self._consumer_page.close()
        self._producer_pages.close()

    def __enter__(self) -> MappedRing:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
