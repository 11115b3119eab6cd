"""A pure-Python reference for the Internet checksum and its incremental
update (RFC 1071, RFC 1624 eqn 3), independent of the C in bpf/csum.h."""
from __future__ import annotations


def ones_sum(data: bytes) -> int:
    """16-bit one's complement sum of big-endian words (odd length padded)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes) -> int:
    """The Internet checksum of `data` (RFC 1071)."""
    return ~ones_sum(data) & 0xFFFF


def update16(check: int, old: int, new: int) -> int:
    """RFC 1624 eqn 3: HC' = ~(~HC + ~m + m')."""
    total = (~check & 0xFFFF) + (~old & 0xFFFF) + new
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def update32(check: int, old: int, new: int) -> int:
    """Eqn 3 for a 32-bit field: two 16-bit words."""
    check = update16(check, old >> 16, new >> 16)
    return update16(check, old & 0xFFFF, new & 0xFFFF)
