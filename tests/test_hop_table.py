"""HopTable: xdp_dnat's kept next hops live in arrays written in place, so a
change must never touch a copy a packet may be reading. The rule is RCU's,
checked here by a model that sees only what reaches the kernel (each
write of a copy, each switch of a slot's live copy, each grace period):
- a copy is written only when no packet can read it: it is not the slot's
  live copy, nor one the slot pointed at since the last grace period began;
- a slot is pointed at a copy only after a grace period since that copy
  was written (every packet then sees it whole).
What the program reads after each change is what was asked for, a change
that asks for what is already there costs nothing, and none costs more
than two grace periods."""
from pathlib import Path

import pytest

from bpflab.host import rcu
from bpflab.libbpf import BpfObject
from bpflab.loaders.nexthops import HOP_NONE, HopTable
from bpflab.loaders.objects import object_path
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.services import BackendHop

pytestmark = pytest.mark.kernel


class RcuModel:
    """What a packet may read, from the writes and grace periods alone."""

    def __init__(self):
        self.live: dict[int, int] = {}  # slot -> copy pointed at (a new array: every slot at copy 0)
        self.pointed_since_grace: set[tuple[int, int]] = set()
        self.written_since_grace: set[tuple[int, int]] = set()
        self.broken: list[str] = []
        self.graces = 0

    def write(self, index: int) -> None:
        slot, copy = divmod(index, 2)
        if self.live.get(slot, 0) == copy or (slot, copy) in self.pointed_since_grace:
            self.broken.append(f"copy {copy} of slot {slot} written while a packet may read it")
        self.written_since_grace.add((slot, copy))

    def point(self, slot: int, copy: int) -> None:
        if copy <= 1 and (slot, copy) in self.written_since_grace:
            self.broken.append(f"slot {slot} pointed at copy {copy} before a grace period since it was written")
        old = self.live.get(slot, 0)
        if old <= 1:
            self.pointed_since_grace.add((slot, old))
        self.live[slot] = copy

    def grace(self) -> None:
        self.graces += 1
        self.pointed_since_grace.clear()
        self.written_since_grace.clear()


class Watched:
    """A map whose writes the model sees before the kernel does."""

    def __init__(self, real, on_write):
        self.real, self.on_write = real, on_write

    def update_many(self, items):
        for key, value in items:
            self.on_write(key, value)
        self.real.update_many(items)

    def update(self, key, value, flags=0):
        self.on_write(key, value)
        self.real.update(key, value, flags)

    def __getattr__(self, name):
        return getattr(self.real, name)


def hop(ip: str, ifindex: int, last_mac_byte: int) -> BackendHop:
    h = BackendHop(ip_be32(ip), ifindex, 1500)
    h.smac[:] = bytes.fromhex("0200000000aa")
    h.dmac[:] = bytes.fromhex("0200000000") + bytes([last_mac_byte])
    return h


@pytest.fixture
def watched_table():
    model = RcuModel()
    with BpfObject(object_path("xdp_dnat")) as obj:
        table = HopTable.of(obj)
        table.grace = model.grace
        table.copies = Watched(table.copies, lambda index, value: model.write(index))
        table.live = Watched(table.live, model.point)
        yield table, model


def reads(table: HopTable) -> dict[int, bytes]:
    return {slot: bytes(h) for slot, h in table.items().items()}


A, B, C, D = (hop("10.244.1.5", 3, 1), hop("10.244.1.5", 3, 2), hop("10.244.1.5", 4, 3), hop("10.244.1.6", 3, 4))


@pytest.mark.parametrize("changes", [
    # one slot changed again and again: every copy written twice over
    [{3: A}, {3: B}, {3: C}, {3: A}, {3: B}],
    # dropped and kept again, and a slot that never had one dropped
    [{3: A}, {3: None}, {3: B}, {3: None}, {5: None}, {3: C}],
    # several slots in one change, some new, some changed, one dropped
    [{0: A, 7: D}, {0: B, 7: None, 9: C}, {0: C, 9: A, 7: D}],
], ids=["changed", "dropped", "several"])
def test_no_copy_a_packet_may_read_is_ever_written(watched_table, changes):
    table, model = watched_table
    wanted: dict[int, bytes] = {}
    for change in changes:
        before = model.graces
        table.write(change)
        assert model.broken == []
        assert model.graces - before <= 2
        wanted.update({slot: bytes(h) for slot, h in change.items() if h is not None})
        for slot in [s for s, h in change.items() if h is None]:
            wanted.pop(slot, None)
        assert reads(table) == wanted


def test_a_change_to_what_packets_already_read_writes_nothing_and_waits_for_nothing(watched_table):
    """A neighbour confirmed or a route event elsewhere re-works every hop:
    those that come out the same cost no grace period."""
    table, model = watched_table
    table.write({3: A, 4: D})
    writes = []
    table.copies.on_write = lambda index, value: writes.append(index)
    table.live.on_write = lambda slot, copy: writes.append(slot)
    graces = model.graces
    table.write({3: hop("10.244.1.5", 3, 1), 4: D, 8: None})
    assert (writes, model.graces - graces) == ([], 0)


def test_cleared_no_slot_has_a_hop_and_the_next_write_waits_first(watched_table):
    table, model = watched_table
    table.write({3: A, 4: D})
    table.clear()
    assert reads(table) == {}
    assert all(copy == HOP_NONE for _, copy in table.live.real.items_batch())
    table.write({3: B})
    assert model.broken == []
    assert reads(table) == {3: bytes(B)}


def test_a_grace_period_can_be_waited_for_here():
    """membarrier(MEMBARRIER_CMD_GLOBAL) on this kernel: the loader's keeper
    stops (and every packet asks the FIB) where it cannot."""
    rcu.grace_period()


def test_no_hop_is_the_value_the_program_takes_for_none():
    header = (Path(__file__).parents[1] / "bpf" / "xdp_dnat.h").read_text()
    assert f"#define HOP_NONE 0x{HOP_NONE:X}\n" in header
