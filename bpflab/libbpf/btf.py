"""Read struct layouts from an object's BTF, to check that a Python ctypes
mirror matches the C struct the program really uses."""
from __future__ import annotations

import ctypes
import dataclasses
import struct

from . import _lib

BTF_KIND_STRUCT = 4
BTF_KIND_DATASEC = 15


class BtfTypeHeader(ctypes.Structure):
    """struct btf_type: what every BTF type starts with (its kind's data follows)."""
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("size", ctypes.c_uint32)]


class _btf_member(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32), ("offset", ctypes.c_uint32)]


@dataclasses.dataclass(frozen=True)
class StructLayout:
    name: str
    size: int
    fields: tuple[tuple[str, int, int], ...]  # (name, byte offset, byte size)


class LayoutMismatch(TypeError):
    """A ctypes mirror disagrees with the struct in the object's BTF."""


BTF_KIND_FUNC = 12
BTF_KIND_DECL_TAG = 17


class Btf:
    def __init__(self, ptr: int, owner=None, owned: bool = False):
        if not ptr:
            raise LookupError("the object has no BTF (build it with clang -g)")
        self._ptr = ptr
        self._owner = owner  # keeps the object (and so the BTF) alive
        self._owned = owned

    @classmethod
    def from_elf(cls, path) -> Btf:
        """The BTF of an object file, without opening it as a BPF object
        (which may fail, e.g. on unresolvable externs)."""
        import os

        ptr = _lib.btf__parse_elf(os.fsencode(path), None)
        if not ptr:
            raise LookupError(f"{path} has no BTF (build it with clang -g)")
        return cls(ptr, owned=True)

    def close(self) -> None:
        if self._owned and self._ptr:
            _lib.btf__free(self._ptr)
        self._ptr = None

    def __del__(self):
        self.close()

    def _address(self, type_id: int) -> int:
        address = _lib.btf__type_by_id(self._ptr, type_id)
        if not address:
            raise LookupError(f"no BTF type {type_id}")
        return address

    def header(self, type_id: int) -> BtfTypeHeader:
        return BtfTypeHeader.from_address(self._address(type_id))

    def body(self, type_id: int, offset: int, size: int) -> bytes:
        """`size` bytes of what follows the type's header, from `offset` (a
        struct's members, an enum's values, an int's encoding)."""
        return ctypes.string_at(self._address(type_id) + ctypes.sizeof(BtfTypeHeader) + offset, size)

    def name_at(self, name_off: int) -> str:
        """A name of the string section (members', enum values')."""
        return _lib.btf__name_by_offset(self._ptr, name_off).decode()

    def codec(self, type_id: int):
        """Plain Python values of this type, both ways (btf_codec)."""
        from .btf_codec import Types

        if not hasattr(self, "_types"):
            self._types = Types(self)
        return self._types.codec(type_id)

    def name_of(self, type_id: int) -> str:
        return self.name_at(self.header(type_id).name_off)

    def datasec_variable(self, section: str, name: str) -> tuple[int, int]:
        """(offset, size) of the global `name` in the data section `section`
        (".rodata", ".data") as the object's BTF lays it out."""
        type_id = _lib.btf__find_by_name_kind(self._ptr, section.encode(), BTF_KIND_DATASEC)
        if type_id < 0:
            raise LookupError(f"no {section} section in the object's BTF")
        for i in range(self.header(type_id).info & 0xFFFF):
            var_type, offset, size = struct.unpack("<III", self.body(type_id, 12 * i, 12))  # struct btf_var_secinfo
            if self.name_of(var_type) == name:
                return offset, size
        raise LookupError(f"no global '{name}' in {section}")

    def decl_tags(self) -> list[tuple[str, str]]:
        """(function name, tag text) for every decl tag on a function, in
        the order the compiler emitted them (source order)."""
        tags = []
        for type_id in range(1, _lib.btf__type_cnt(self._ptr)):
            t = self.header(type_id)
            if (t.info >> 24) & 0x1F != BTF_KIND_DECL_TAG:
                continue
            target = self.header(t.size)  # the `type` member: what is tagged
            if (target.info >> 24) & 0x1F == BTF_KIND_FUNC:
                tags.append((self.name_of(t.size), self.name_of(type_id)))
        return tags

    def struct(self, name: str) -> StructLayout:
        type_id = _lib.btf__find_by_name_kind(self._ptr, name.encode(), BTF_KIND_STRUCT)
        if type_id < 0:
            raise LookupError(f"struct {name} is not in the object's BTF")
        t = BtfTypeHeader.from_address(_lib.btf__type_by_id(self._ptr, type_id))
        vlen, kind_flag = t.info & 0xFFFF, t.info >> 31
        members = (_btf_member * vlen).from_address(_lib.btf__type_by_id(self._ptr, type_id) + ctypes.sizeof(t))
        fields = []
        for m in members:
            bit_offset = m.offset & 0xFFFFFF if kind_flag else m.offset
            size = _lib.btf__resolve_size(self._ptr, m.type)
            fields.append((_lib.btf__name_by_offset(self._ptr, m.name_off).decode(), bit_offset // 8, size))
        return StructLayout(name, t.size, tuple(fields))


def mirror_layout(ctype: type[ctypes.Structure]) -> StructLayout:
    fields = tuple((name, getattr(ctype, name).offset, getattr(ctype, name).size) for name, *_ in ctype._fields_)
    return StructLayout(ctype.__name__, ctypes.sizeof(ctype), fields)


def check_mirror(btf: Btf, c_name: str, ctype: type[ctypes.Structure]) -> None:
    """Raise LayoutMismatch unless ctype has the same size and the same
    fields at the same offsets as `struct c_name` in the BTF."""
    want, have = btf.struct(c_name), mirror_layout(ctype)
    problems = []
    if want.size != have.size:
        problems.append(f"size {have.size} != {want.size}")
    if [f for f in want.fields] != [f for f in have.fields]:
        problems.append(f"fields {list(have.fields)} != {list(want.fields)}")
    if problems:
        raise LayoutMismatch(
            f"Python mirror {ctype.__name__} does not match struct {c_name} in the object's BTF: " + "; ".join(problems)
        )

