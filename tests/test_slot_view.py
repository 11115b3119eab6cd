"""SlotView, the loader's one read of every backend slot: which slots are
free (all zero, as the loader frees them) and which are used, found by
searches in C over the raw bytes; held to a plain loop over the slots."""
from hypothesis import given
from hypothesis import strategies as st

from bpflab.loaders.service_table import SlotView

SIZE = SlotView.SIZE
used_slot = st.binary(min_size=SIZE, max_size=SIZE).filter(lambda b: any(b))
# Used slots that end or start with zeros, so zero runs cross slot edges.
edgy_slot = st.integers(1, SIZE - 1).map(lambda k: bytes(k) + b"\x01" + bytes(SIZE - k - 1))
slot = st.one_of(st.just(bytes(SIZE)), used_slot, edgy_slot)


@given(st.lists(slot, min_size=1, max_size=40))
def test_free_slots_are_whole_zero_slots_never_a_zero_run_across_two(slots):
    view = SlotView(b"".join(slots))
    assert list(view.free()) == [i for i, s in enumerate(slots) if s == bytes(SIZE)]
    assert len(view) == sum(1 for s in slots if s != bytes(SIZE))


def test_a_zero_run_from_one_used_slot_into_the_next_is_not_a_free_slot():
    raw = b"\x01" + bytes(SIZE - 1) + bytes(SIZE - 1) + b"\x01" + bytes(SIZE)
    assert list(SlotView(raw).free()) == [2]
