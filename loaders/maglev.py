"""Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4):
the lookup table a service's flows are spread over.

Every backend has a preference list, a permutation of the table's entries
given by two hashes of its name: offset = h1 mod M, skip = h2 mod (M - 1) + 1,
entry j of the list = (offset + j * skip) mod M, a permutation because M is
prime. Backends take turns claiming their next preferred entry that is still
free, until all M entries are claimed. Each backend ends with about M / N
entries, and a backend that comes or goes changes little more than its own
entries (the paper's "minimal disruption", near-optimal rather than exact).

Weights (the paper's section 3.4 closing remark, as Katran and Cilium do):
a backend's share of turns is its share of the total weight. The turn
order: the next turn goes to the backend whose (turns taken + 1) / weight
is smallest, ties to the earlier name; with equal weights that is plain
round robin. After M turns each backend has claimed its weight's share of
the table to within one entry.

The table depends only on the backends' names, weights and M, never on the
order they were added in, so every load balancer computes the same table.
"""
from __future__ import annotations

import array
import ctypes
import hashlib
import heapq
from collections.abc import Sequence

from bpflab.host.paths import BUILD_DIR

DEFAULT_SIZE = 16381  # Cilium's default
MAX_SIZE = 65537  # MAGLEV_MAX_SIZE in bpf/xdp_dnat.h (Katran's size)
MAX_BACKENDS = 65535  # MAGLEV_MAX_BACKENDS: an entry is a 16-bit index into the table's backends
# The same fill compiled (loaders/maglev.c, built by make): ten thousand
# services need tables faster than Python's loop makes them.
NATIVE_PATH = BUILD_DIR / "native" / "libbpflab_maglev.so"


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    f = 2
    while f * f <= n:
        if n % f == 0:
            return False
        f += 1
    return True


def check_size(size: int) -> int:
    if not (is_prime(size) and 3 <= size <= MAX_SIZE):
        raise ValueError(f"Maglev table size {size} is not a prime between 3 and {MAX_SIZE}")
    return size


def _hash64(name: str, person: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8, person=person).digest(), "little")


def preference(name: str, size: int) -> tuple[int, int]:
    """(offset, skip) of a backend's permutation of a table of `size` entries."""
    return _hash64(name, b"maglev-offset") % size, _hash64(name, b"maglev-skip") % (size - 1) + 1


def _load_native():
    try:
        lib = ctypes.CDLL(str(NATIVE_PATH))
    except OSError:  # not built (a wheel without make's output): Python's loop
        return None
    u32p = ctypes.POINTER(ctypes.c_uint32)
    lib.maglev_fill.argtypes = [ctypes.c_uint32, ctypes.c_uint32, u32p, u32p, u32p, ctypes.POINTER(ctypes.c_int32)]
    lib.maglev_fill.restype = ctypes.c_int
    u16p = ctypes.POINTER(ctypes.c_uint16)
    lib.maglev_fill_labels.argtypes = [ctypes.c_uint32, ctypes.c_uint32, u32p, u32p, u32p, u16p, u16p]
    lib.maglev_fill_labels.restype = ctypes.c_int
    return lib


_native = _load_native()


def native() -> bool:
    """Whether build() fills tables in compiled code."""
    return _native is not None


def _checked(backends: Sequence[tuple[str, int]], size: int) -> tuple[list[int], list[tuple[int, int]], list[int]]:
    """(order, each ranked backend's permutation, its weight): backends
    ranked by name, so the table is independent of insertion order."""
    check_size(size)
    names = [name for name, _ in backends]
    if len(set(names)) != len(names):
        raise ValueError("backend names must be distinct")
    if any(weight <= 0 for _, weight in backends):
        raise ValueError("backend weights must be positive")
    order = sorted(range(len(backends)), key=lambda i: names[i])  # independent of insertion order
    return order, [preference(names[i], size) for i in order], [backends[i][1] for i in order]


def build_entries(backends: Sequence[tuple[str, int]], size: int = DEFAULT_SIZE) -> array.array:
    """build() as 16-bit entries (array "H"), the form xdp_dnat's tables
    hold: filled in compiled code straight into the array where it can be."""
    if len(backends) > MAX_BACKENDS:
        raise ValueError(f"{len(backends)} backends: a table holds at most {MAX_BACKENDS}")
    if _native is None or not backends:
        return array.array("H", build(backends, size))
    order, params, weights = _checked(backends, size)
    n = len(order)
    out = array.array("H", bytes(2 * size))
    c_out = (ctypes.c_uint16 * size).from_buffer(out)
    err = _native.maglev_fill_labels(size, n, (ctypes.c_uint32 * n)(*(p[0] for p in params)),
                                     (ctypes.c_uint32 * n)(*(p[1] for p in params)), (ctypes.c_uint32 * n)(*weights),
                                     (ctypes.c_uint16 * n)(*order), c_out)
    del c_out  # the buffer export ends before the array is used
    if err:
        raise RuntimeError(f"Maglev fill of a {size}-entry table failed (errno {-err})")
    return out


def build(backends: Sequence[tuple[str, int]], size: int = DEFAULT_SIZE, *, compiled: bool = True) -> list[int]:
    """The table for (name, weight) backends: entry -> index into `backends`.

    Names must be distinct and weights positive; an empty list gives an
    empty table (a service with no backend to choose). compiled=False fills
    it in Python even where the compiled fill is there (the same table)."""
    order, params, weights = _checked(backends, size)
    if not backends:
        return []
    if compiled and _native is not None:
        return _fill_native(order, params, weights, size)
    taken = [0] * len(order)  # turns taken
    tried = [0] * len(order)  # how far down its permutation each backend is
    table = [-1] * size
    # Turns due at (taken + 1) / weight, compared exactly (integers, no floats).
    if len(set(weights)) == 1:
        return _round_robin(order, params, size)
    heap = [_Turn(1, weights[r], r) for r in range(len(order))]
    heapq.heapify(heap)
    filled = 0
    while filled < size:
        turn = heapq.heappop(heap)
        r = turn.rank
        table[_claim(table, params[r], tried, r, size)] = order[r]
        taken[r] += 1
        filled += 1
        heapq.heappush(heap, _Turn(taken[r] + 1, weights[r], r))
    return table


def _fill_native(order: list[int], params: list[tuple[int, int]], weights: list[int], size: int) -> list[int]:
    n = len(order)
    offsets, skips = (ctypes.c_uint32 * n)(*(p[0] for p in params)), (ctypes.c_uint32 * n)(*(p[1] for p in params))
    table = array.array("i", bytes(4 * size))
    c_table = (ctypes.c_int32 * size).from_buffer(table)
    err = _native.maglev_fill(size, n, offsets, skips, (ctypes.c_uint32 * n)(*weights), c_table)
    del c_table  # the buffer export ends before the array is read
    if err:
        raise RuntimeError(f"Maglev fill of a {size}-entry table failed (errno {-err})")
    return [order[r] for r in table]


def _claim(table: list[int], pref: tuple[int, int], tried: list[int], r: int, size: int) -> int:
    """The next free entry down backend r's permutation (which visits every
    entry within `size` steps: a bound that turns a broken permutation into
    an error instead of a loop without end)."""
    offset, skip = pref
    while tried[r] < size:
        c = (offset + tried[r] * skip) % size
        tried[r] += 1
        if table[c] < 0:
            return c
    raise RuntimeError(f"Maglev permutation (offset {offset}, skip {skip}) of a {size}-entry table found no free entry")


def _round_robin(order: list[int], params: list[tuple[int, int]], size: int) -> list[int]:
    """build() when every weight is the same: turns in plain rotation (what
    the heap's order reduces to), without its cost."""
    table = [-1] * size
    tried = [0] * len(order)
    filled = 0
    while True:
        for r, pref in enumerate(params):
            table[_claim(table, pref, tried, r, size)] = order[r]
            filled += 1
            if filled == size:
                return table


class _Turn:
    """A backend's next turn, due at `num / weight` (ties: lower rank first)."""

    __slots__ = ("num", "weight", "rank")

    def __init__(self, num: int, weight: int, rank: int):
        self.num, self.weight, self.rank = num, weight, rank

    def __lt__(self, other: _Turn) -> bool:
        a, b = self.num * other.weight, other.num * self.weight
        return a < b or (a == b and self.rank < other.rank)
