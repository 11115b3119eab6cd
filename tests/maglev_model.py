"""An independent model of xdp_dnat's backend choice, written from the
Maglev paper (Eisenbud et al., NSDI 2016, Pseudocode 1) and lookup3, not
from the loader's code: the table a service's backends make, and the
entry a packet's 5-tuple picks.

Spec shared with the loader (what both must agree on, not how):
- a backend's name is "IP:PORT"; offset = H("maglev-offset", name) mod M,
  skip = H("maglev-skip", name) mod (M - 1) + 1, H = the first 8 bytes of
  BLAKE2b with that personalisation, read little-endian;
- backends are ranked by name; turns go to the backend whose
  (turns taken + 1) / weight is smallest, ties to the lower rank;
- the packet's hash is lookup3's final mix of (saddr, daddr,
  sport << 16 | dport) with seed proto, each field's bytes read as the
  x86 program loads them (little-endian).
"""
from __future__ import annotations

import hashlib
from fractions import Fraction

MASK = 0xFFFFFFFF


def _h(name: str, person: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8, person=person).digest(), "little")


def permutation(name: str, m: int) -> list[int]:
    offset, skip = _h(name, b"maglev-offset") % m, _h(name, b"maglev-skip") % (m - 1) + 1
    return [(offset + j * skip) % m for j in range(m)]


def table(backends: list[tuple[str, int]], m: int) -> list[str]:
    """Entry -> backend name (Pseudocode 1, turns by weight)."""
    ranked = sorted(backends)
    perms = {name: permutation(name, m) for name, _ in ranked}
    nxt = {name: 0 for name, _ in ranked}
    taken = {name: 0 for name, _ in ranked}
    entry: list[str | None] = [None] * m
    for _ in range(m):
        name = min(ranked, key=lambda b: (Fraction(taken[b[0]] + 1, b[1]), b[0]))[0]
        c = perms[name][nxt[name]]
        while entry[c] is not None:
            nxt[name] += 1
            c = perms[name][nxt[name]]
        entry[c] = name
        nxt[name] += 1
        taken[name] += 1
    return entry  # type: ignore[return-value]


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & MASK


def lookup3_final(a: int, b: int, c: int, seed: int) -> int:
    a, b, c = [(v + 0xDEADBEEF + seed) & MASK for v in (a, b, c)]
    for x, y, k in (("c", "b", 14), ("a", "c", 11), ("b", "a", 25), ("c", "b", 16), ("a", "c", 4), ("b", "a", 14),
                    ("c", "b", 24)):
        regs = {"a": a, "b": b, "c": c}
        regs[x] = ((regs[x] ^ regs[y]) - _rol(regs[y], k)) & MASK
        a, b, c = regs["a"], regs["b"], regs["c"]
    return c


def flow_hash(frame: bytes) -> int:
    """The hash of an untagged IPv4 TCP/UDP frame's 5-tuple."""
    ihl = (frame[14] & 0x0F) * 4
    l4 = 14 + ihl
    le = lambda raw: int.from_bytes(raw, "little")  # noqa: E731
    saddr, daddr = le(frame[26:30]), le(frame[30:34])
    sport, dport = le(frame[l4:l4 + 2]), le(frame[l4 + 2:l4 + 4])
    return lookup3_final(saddr, daddr, (sport << 16) | dport, frame[23])


def pick(frame: bytes, entries: list[str]) -> str:
    """The backend a new flow of `frame` goes to."""
    return entries[flow_hash(frame) % len(entries)]
