"""Values of a BTF type from and to plain Python: what `bpflab --map
NAME=FILE.json` and `fill_map()` use to fill any program's maps by field name.

Integers are native (little-endian here), except fields typed __be16,
__be32 or __be64, which hold network byte order: they take the host number
and store it big-endian, and a __be32 also takes a dotted IPv4 address.
An IPv6 address (struct in6_addr, or an array of big-endian integers 16
bytes long) takes and shows IPv6 text ("fd00::10").
Structs take a dict by field name (missing fields are zero, an unknown one
is an error naming it), arrays a list (or a string, for char arrays), enums
a number or an enumerator's name. Every error names the field it is about.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import struct

from .maps import Map

(KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD, KIND_TYPEDEF, KIND_VOLATILE,
 KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC, KIND_FLOAT, KIND_DECL_TAG,
 KIND_TYPE_TAG, KIND_ENUM64) = range(1, 20)
QUALIFIERS = {KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG}
BIG_ENDIAN_TYPEDEFS = {"__be16": 2, "__be32": 4, "__be64": 8}


class EncodeError(ValueError):
    """A value does not fit its BTF type; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Int:
    name: str
    size: int
    signed: bool = False
    big_endian: bool = False

    def encode(self, value, where: str) -> bytes:
        if self.big_endian and self.size == 4 and isinstance(value, str):
            try:
                return ipaddress.IPv4Address(value).packed
            except ValueError:
                raise EncodeError(f"{where}: {value!r} is not a dotted IPv4 address") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise EncodeError(f"{where}: want a number for {self.name}, not {value!r}")
        lo, hi = (-(1 << (8 * self.size - 1)), (1 << (8 * self.size - 1)) - 1) if self.signed else \
            (0, (1 << (8 * self.size)) - 1)
        if not lo <= value <= hi:
            raise EncodeError(f"{where}: {value} does not fit {self.name} ({lo}..{hi})")
        return value.to_bytes(self.size, "big" if self.big_endian else "little", signed=self.signed)

    def decode(self, raw: bytes):
        value = int.from_bytes(raw, "big" if self.big_endian else "little", signed=self.signed)
        return str(ipaddress.IPv4Address(value)) if self.big_endian and self.size == 4 else value


@dataclasses.dataclass(frozen=True)
class Enum:
    name: str
    size: int
    values: dict[str, int]

    def encode(self, value, where: str) -> bytes:
        if isinstance(value, str):
            if value not in self.values:
                raise EncodeError(f"{where}: {value!r} is not one of {self.name}'s ({', '.join(self.values)})")
            value = self.values[value]
        return Int(self.name, self.size, signed=True).encode(value, where)

    def decode(self, raw: bytes):
        number = int.from_bytes(raw, "little", signed=True)
        return next((k for k, v in self.values.items() if v == number), number)


@dataclasses.dataclass(frozen=True)
class Array:
    element: object
    count: int
    size: int

    def encode(self, value, where: str) -> bytes:
        if isinstance(value, str) and isinstance(self.element, Int) and self.element.size == 1:
            value = value.encode()
        if isinstance(value, (bytes, bytearray)) and isinstance(self.element, Int) and self.element.size == 1:
            value = list(value)
        if not isinstance(value, list):
            raise EncodeError(f"{where}: want a list of at most {self.count}, not {value!r}")
        if len(value) > self.count:
            raise EncodeError(f"{where}: {len(value)} elements do not fit an array of {self.count}")
        raw = b"".join(self.element.encode(v, f"{where}[{i}]") for i, v in enumerate(value))
        return raw.ljust(self.size, b"\0")

    def decode(self, raw: bytes):
        step = self.size // self.count if self.count else 0
        return [self.element.decode(raw[i * step:(i + 1) * step]) for i in range(self.count)]


@dataclasses.dataclass(frozen=True)
class Ipv6Address:
    """16 bytes holding an IPv6 address in network order (struct in6_addr,
    __be32[4], __be16[8]): IPv6 text in and out; what it stands for
    (`inner`) still takes its own form."""

    inner: object
    size: int = 16

    def encode(self, value, where: str) -> bytes:
        if isinstance(value, str):
            try:
                return ipaddress.IPv6Address(value).packed
            except ValueError:
                raise EncodeError(f"{where}: {value!r} is not an IPv6 address") from None
        return self.inner.encode(value, where)

    def decode(self, raw: bytes):
        return str(ipaddress.IPv6Address(raw))


def _is_ipv6(codec, name: str) -> bool:
    if codec.size != 16:
        return False
    if name == "in6_addr":
        return True
    return isinstance(codec, Array) and isinstance(codec.element, Int) and codec.element.big_endian


@dataclasses.dataclass(frozen=True)
class Struct:
    name: str
    size: int
    members: tuple[tuple[str, int, object], ...]  # (name, byte offset, codec)
    union: bool = False

    def encode(self, value, where: str) -> bytes:
        if not isinstance(value, dict):
            raise EncodeError(f"{where}: want an object with fields of struct {self.name}, not {value!r}")
        known = {name: (offset, codec) for name, offset, codec in self.members}
        for name in value:
            if name not in known:
                raise EncodeError(f"{where}.{name}: struct {self.name} has no field '{name}' "
                                  f"(has: {', '.join(known)})")
        if self.union and len(value) > 1:
            raise EncodeError(f"{where}: union {self.name} takes one member, not {len(value)}")
        out = bytearray(self.size)
        for name, field in value.items():
            offset, codec = known[name]
            raw = codec.encode(field, f"{where}.{name}")
            out[offset:offset + len(raw)] = raw
        return bytes(out)

    def decode(self, raw: bytes):
        return {name: codec.decode(raw[offset:offset + codec.size]) for name, offset, codec in self.members
                if not name.startswith("pad") and name}


class Types:
    """The codecs of a BTF's types (a bpflab.libbpf.btf.Btf)."""

    def __init__(self, btf):
        self._btf = btf
        self._cache: dict[int, object] = {}

    def codec(self, type_id: int):
        if type_id not in self._cache:
            built = self._build(type_id)
            self._cache[type_id] = Ipv6Address(built) if _is_ipv6(built, self._btf.name_of(type_id)) else built
        return self._cache[type_id]

    def _build(self, type_id: int):
        btf = self._btf
        t = btf.header(type_id)
        kind, vlen, name = (t.info >> 24) & 0x1F, t.info & 0xFFFF, btf.name_of(type_id)
        if kind in QUALIFIERS:
            return self.codec(t.size)
        if kind == KIND_TYPEDEF:
            if name in BIG_ENDIAN_TYPEDEFS:
                return Int(name, BIG_ENDIAN_TYPEDEFS[name], big_endian=True)
            return self.codec(t.size)
        if kind == KIND_INT:
            (encoding,) = struct.unpack("<I", btf.body(type_id, 0, 4))
            if encoding & 0xFF != 8 * t.size or (encoding >> 16) & 0xFF:
                raise EncodeError(f"{name}: bitfield integers are not supported")
            return Int(name, t.size, signed=bool((encoding >> 24) & 1))
        if kind in (KIND_ENUM, KIND_ENUM64):
            step = 8 if kind == KIND_ENUM else 12
            values = {}
            for i in range(vlen):
                name_off, lo = struct.unpack_from("<Ii", btf.body(type_id, i * step, 8))
                values[btf.name_at(name_off)] = lo
            return Enum(name or "enum", t.size, values)
        if kind == KIND_ARRAY:
            element, _index, count = struct.unpack("<III", btf.body(type_id, 0, 12))
            codec = self.codec(element)
            return Array(codec, count, codec.size * count)
        if kind in (KIND_STRUCT, KIND_UNION):
            members = []
            kind_flag = t.info >> 31
            for i in range(vlen):
                name_off, member_type, offset = struct.unpack("<III", btf.body(type_id, 12 * i, 12))
                if kind_flag and offset >> 24:
                    raise EncodeError(f"struct {name}: bitfields are not supported")
                bits = offset & 0xFFFFFF if kind_flag else offset
                members.append((btf.name_at(name_off), bits // 8, self.codec(member_type)))
            return Struct(name or "(anonymous)", t.size, tuple(members), union=kind == KIND_UNION)
        raise EncodeError(f"{name or 'type'}: BTF kind {kind} has no plain value")


def _codecs(obj, bmap, name: str):
    if not (bmap.btf_key_type_id and bmap.btf_value_type_id):
        raise EncodeError(f"map {name}: declared without BTF key and value types (use __type(key, ...) and "
                          "__type(value, ...)), so its fields have no names")
    return obj.btf.codec(bmap.btf_key_type_id), obj.btf.codec(bmap.btf_value_type_id)


def _encode_entries(obj, bmap, name: str, entries) -> list[tuple[bytes, object]]:
    """[(key bytes, value bytes)], or for a map of maps [(key bytes, [inner
    entries encoded])]: the value of a map-in-map entry is the inner map's
    entries, in the same shape."""
    if bmap.inner is not None:
        key_codec = obj.btf.codec(bmap.btf_key_type_id) if bmap.btf_key_type_id else None
        if key_codec is None:
            raise EncodeError(f"map {name}: declared without a BTF key type, so its fields have no names")
    else:
        key_codec, value_codec = _codecs(obj, bmap, name)
    if not isinstance(entries, list):
        raise EncodeError(f"map {name}: want a list of {{\"key\": ..., \"value\": ...}}, not {type(entries).__name__}")
    encoded = []
    for i, entry in enumerate(entries):
        where = f"map {name}, entry {i}"
        if not isinstance(entry, dict) or set(entry) != {"key", "value"}:
            raise EncodeError(f"{where}: want {{\"key\": ..., \"value\": ...}}, not {entry!r}")
        key = key_codec.encode(entry["key"], f"{where}, key")
        if bmap.inner is not None:
            value = _encode_entries(obj, bmap.inner, f"{name}, entry {i}, value: inner map", entry["value"])
        else:
            value = value_codec.encode(entry["value"], f"{where}, value")
        encoded.append((key, value))
    return encoded


def _write(bmap, encoded) -> None:
    for key, value in encoded:
        if bmap.inner is None:
            bmap.update_raw(key, value)
            continue
        with bmap.create_inner() as inner:
            _write(inner, value)
            bmap.update_raw(key, struct.pack("=I", inner.fd))  # an inner map goes in by fd


def fill_map(obj, name: str, entries: list) -> int:
    """Put `entries` ([{"key": ..., "value": ...}, ...], the shape of
    `bpftool map dump -j`'s formatted part) into map `name` of a loaded
    BpfObject; keys and values are encoded through the object's BTF. A map
    of maps takes as each value the entries of a new inner map. All entries
    are encoded before any is written. Returns how many."""
    bmap = obj.map(name)
    encoded = _encode_entries(obj, bmap, name, entries)
    _write(bmap, encoded)
    return len(encoded)


def _dump(obj, bmap, name: str) -> list[dict]:
    if bmap.inner is not None:
        key_codec = obj.btf.codec(bmap.btf_key_type_id)
        out = []
        for key, (value,) in bmap.items_raw():
            with Map.from_id(struct.unpack("=I", value)[0]) as inner:  # and comes out by id
                inner.btf_key_type_id = bmap.inner.btf_key_type_id
                inner.btf_value_type_id = bmap.inner.btf_value_type_id
                out.append({"key": key_codec.decode(key), "value": _dump(obj, inner, name)})
        return out
    key_codec, value_codec = _codecs(obj, bmap, name)
    out = []
    for key, values in bmap.items_raw():
        decoded = [value_codec.decode(v) for v in values]
        out.append({"key": key_codec.decode(key), "value": decoded if bmap.percpu else decoded[0]})
    return out


def dump_map(obj, name: str) -> list[dict]:
    """Map `name`'s entries decoded through the BTF, the shape fill_map
    takes (a per-CPU map's value: one per CPU; a map of maps': the inner
    map's entries)."""
    return _dump(obj, obj.map(name), name)


def addresses_and_ports(codec, raw: bytes) -> tuple[set[str], set[int]]:
    """The IPv4 addresses (__be32 fields), IPv6 addresses (in6_addr and
    16-byte big-endian arrays) and ports (__be16 fields) in a value of
    `codec`'s type: what a program's maps say it acts on."""
    addresses, ports = set(), set()

    def walk(c, data: bytes) -> None:
        if isinstance(c, Ipv6Address):
            addresses.add(c.decode(data))
        elif isinstance(c, Int) and c.big_endian:
            value = c.decode(data)
            (addresses.add(value) if c.size == 4 else ports.add(value) if c.size == 2 else None)
        elif isinstance(c, Struct):
            for _name, offset, member in c.members:
                walk(member, data[offset:offset + member.size])
        elif isinstance(c, Array) and c.count:
            step = c.size // c.count
            for i in range(c.count):
                walk(c.element, data[i * step:(i + 1) * step])

    walk(codec, raw)
    return addresses, ports
