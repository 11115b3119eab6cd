"""The mapped ring reader (bpflab.libbpf.ringmap), checked against records
the kernel wrote: tests/bpf/binding.bpf.c puts {frame length, first 4 bytes}
into a 4096-byte ring (records of 16 bytes), and discards the record of
a frame that starts with 0xfe. The model is the list of frames sent."""
import ctypes
import threading

import numpy as np
import pytest

from bpflab.libbpf import BpfObject
from bpflab.libbpf.ringmap import MappedRing, RecordSizeMismatch, record_stride
from bpflab.loaders.objects import BUILD_DIR

pytestmark = pytest.mark.kernel
RECORD = np.dtype([("len", "<u4"), ("first_word", "<u4")])
# The kernel refuses a reservation that would fill the ring to its last
# byte (new producer position - consumer position > mask): 255 records.
RING_RECORDS = (4096 - 1) // record_stride(RECORD.itemsize)


def frame(seq: int, size: int = 20, discard: bool = False) -> bytes:
    """Sequence numbers below 2**24 in 3 bytes after a first byte that is
    0, or 0xfe for a record the program discards."""
    return bytes([0xFE if discard else 0]) + seq.to_bytes(3, "big") + bytes(size - 4)


def seq_of(first_word: int) -> int:
    return int.from_bytes(first_word.to_bytes(4, "little")[1:], "big")


@pytest.fixture
def binding():
    with BpfObject(BUILD_DIR / "tests" / "binding.bpf.o") as obj:
        yield obj


@pytest.fixture
def ring(binding):
    with MappedRing(binding.map("events"), RECORD) as r:
        yield r


def test_records_come_in_order_and_exact_across_many_wraparounds(binding, ring):
    """1000 records through a 256-record ring, read every 37 (a batch
    often spans the ring's end: the double mapping keeps it contiguous)."""
    prog = binding.program("binding_prog")
    got = []
    for seq in range(1000):
        prog.test_run(frame(seq, size=20 + seq % 7))
        if seq % 37 == 36:
            got += ring.read().tolist()
    got += ring.read().tolist()
    assert [(n, seq_of(w)) for n, w in got] == [(20 + seq % 7, seq) for seq in range(1000)]
    assert ring.available_bytes() == 0


def test_a_full_ring_keeps_the_first_records_and_the_reader_frees_it(binding, ring):
    prog = binding.program("binding_prog")
    for seq in range(RING_RECORDS + 44):
        prog.test_run(frame(seq))
    assert [seq_of(w) for _, w in ring.read().tolist()] == list(range(RING_RECORDS))
    prog.test_run(frame(9999))  # the space is the kernel's again
    assert [(n, seq_of(w)) for n, w in ring.read().tolist()] == [(20, 9999)]


def test_discarded_records_are_skipped(binding, ring):
    prog = binding.program("binding_prog")
    for seq in range(30):
        prog.test_run(frame(seq, discard=seq % 3 == 1))
    assert [seq_of(w) for _, w in ring.read().tolist()] == [seq for seq in range(30) if seq % 3 != 1]
    assert ring.available_bytes() == 0


@pytest.mark.parametrize("dtype", [np.dtype("<u4"), np.dtype([("a", "<u4"), ("b", "<u4"), ("c", "<u4")])])
def test_records_of_another_size_are_an_error_never_garbage(binding, dtype):
    binding.program("binding_prog").test_run(frame(1))
    with MappedRing(binding.map("events"), dtype) as ring:
        with pytest.raises(RecordSizeMismatch, match=f"a record of 8 bytes, the reader decodes {dtype.itemsize}"):
            ring.read()


def test_a_reader_racing_a_producer_on_another_cpu_loses_nothing(binding, ring):
    """Records the producer has reserved but not committed yet (BUSY) end a
    batch; every record arrives once, in order, or was counted as not
    reserved (the ring was full)."""
    prog = binding.program("binding_prog")
    sent, done = 5_000, threading.Event()  # ~0.3 s here, ~12 s under emulation

    def produce():
        for seq in range(sent):
            prog.test_run(frame(seq))
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    got = []
    while not done.is_set():
        ring.wait(0.01)
        got += [seq_of(w) for _, w in ring.read().tolist()]
    producer.join()
    got += [seq_of(w) for _, w in ring.read().tolist()]
    assert got == sorted(set(got)), "a record came twice or out of order"
    lost = binding.map("events_lost").bind(ctypes.c_uint32, ctypes.c_uint64).lookup(0)
    assert len(got) + lost == sent
    assert len(got) > RING_RECORDS  # the reader freed space while the producer ran


def test_wait_returns_when_records_arrive_and_times_out_when_none_do(binding, ring):
    assert ring.wait(0.05) is False
    binding.program("binding_prog").test_run(frame(5))
    assert ring.wait(1.0) is True
