"""The pure-Python RFC 1624 reference agrees with full recomputation."""
import struct

from hypothesis import given
from hypothesis import strategies as st

from tests.rfc1624 import checksum, update16, update32


def test_rfc1624_worked_example():
    # RFC 1624 section 4: HC 0xDD2F, m 0x5555 -> m' 0x3285 gives 0x0000, where
    # eqn 2 would give the "-0" 0xFFFF.
    assert update16(0xDD2F, 0x5555, 0x3285) == 0x0000


@given(st.binary(min_size=4, max_size=200).filter(lambda b: len(b) % 2 == 0), st.data())
def test_update16_equals_full_recomputation(data, draw):
    i = draw.draw(st.integers(0, len(data) // 2 - 1)) * 2
    new_word = draw.draw(st.integers(0, 0xFFFF))
    old_word = int.from_bytes(data[i:i + 2], "big")
    changed = data[:i] + new_word.to_bytes(2, "big") + data[i + 2:]
    incremental = update16(checksum(data), old_word, new_word)
    full = checksum(changed)
    # One's complement has two zeros; they differ only in the all-zero case.
    assert incremental == full or {incremental, full} == {0x0000, 0xFFFF}


@given(st.binary(min_size=8, max_size=200).filter(lambda b: len(b) % 2 == 0), st.integers(0, 2**32 - 1))
def test_update32_equals_full_recomputation(data, new):
    (old,) = struct.unpack_from("!I", data, 4)
    changed = data[:4] + struct.pack("!I", new) + data[8:]
    incremental = update32(checksum(data), old, new)
    assert incremental == checksum(changed) or {incremental, checksum(changed)} == {0x0000, 0xFFFF}
