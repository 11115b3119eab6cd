"""Typed access to BPF maps: keys and values are ctypes types that mirror
the C structs, checked against the map's real key and value sizes."""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
from collections.abc import Iterator

from . import _lib

# update()'s flags (any, only new keys, only existing keys) and Map.create()'s types
from ._lib import BPF_ANY, BPF_EXIST, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_NOEXIST
from .errors import ENOTSUPP, BatchError, BpfError, NotSupported

__all__ = ["BPF_ANY", "BPF_EXIST", "BPF_MAP_TYPE_ARRAY", "BPF_MAP_TYPE_PERCPU_ARRAY", "BPF_NOEXIST", "Map",
           "possible_cpus"]

# What a kernel without batch operations for a map type answers; the same
# entries then go one by one.
_NO_BATCH = (-errno.EINVAL, -errno.EOPNOTSUPP, -ENOTSUPP)
BPF_F_MMAPABLE = 1 << 10  # an array whose values user space may map


class bpf_map_info_head(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
        ("ifindex", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
    ]


def possible_cpus() -> int:
    n = _lib.libbpf_num_possible_cpus()
    if n < 0:
        raise BpfError(-n, "cannot count possible CPUs")
    return n


class Map:
    def __init__(self, name: str, map_type: int, key_size: int, value_size: int, max_entries: int, fd: int = -1):
        self.name = name
        self.type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self._fd = fd
        self._ptr = None
        self._owns_fd = False
        self.key_type: type | None = None
        self.value_type: type | None = None
        self.btf_key_type_id = self.btf_value_type_id = 0  # 0: the map was declared without BTF types
        self._inner: Map | None = None
        self.btf_fd = -1  # the BTF the map was created with (set when its object loads)
        self._owns_btf_fd = False

    @classmethod
    def from_libbpf(cls, ptr, *, description: bool = False) -> Map:
        """The map libbpf holds at `ptr`; a `description` only keeps what it
        says (a template libbpf frees once the object is loaded)."""
        m = cls(
            _lib.bpf_map__name(ptr).decode(),
            _lib.bpf_map__type(ptr),
            _lib.bpf_map__key_size(ptr),
            _lib.bpf_map__value_size(ptr),
            _lib.bpf_map__max_entries(ptr),
        )
        m._ptr = None if description else ptr
        m.btf_key_type_id = _lib.bpf_map__btf_key_type_id(ptr)
        m.btf_value_type_id = _lib.bpf_map__btf_value_type_id(ptr)
        inner = _lib.bpf_map__inner_map(ptr)
        if inner:
            m._inner = cls.from_libbpf(inner, description=True)
        return m

    def object_loaded(self, btf_fd: int) -> None:
        """Its object was loaded: the map exists in the kernel now."""
        self._fd = _lib.bpf_map__fd(self._ptr)
        self.btf_fd = btf_fd

    def object_closed(self) -> None:
        """Its object was closed, and its fd with it."""
        self._fd = -1

    @classmethod
    def from_pin(cls, path: str | os.PathLike) -> Map:
        """Open a pinned map; close() (or a with block) releases the fd."""
        fd = _lib.bpf_obj_get(os.fsencode(path))
        if fd < 0:
            raise BpfError(-fd, f"cannot open pinned map {path}")
        return cls._from_fd(fd, str(path))

    @classmethod
    def create(cls, name: str, map_type: int, key_size: int, value_size: int, max_entries: int,
               btf: tuple[int, int, int] | None = None) -> Map:
        """A new map of our own, outside any object (e.g. the inner map a
        map-in-map entry is swapped to); close() releases it. `btf`: (BTF fd,
        key type id, value type id), as the map's declaration had them."""
        opts = None
        if btf is not None:
            opts = _lib.bpf_map_create_opts(sz=ctypes.sizeof(_lib.bpf_map_create_opts), btf_fd=btf[0],
                                            btf_key_type_id=btf[1], btf_value_type_id=btf[2])
            opts = ctypes.byref(opts)
        fd = _lib.bpf_map_create(map_type, name.encode()[:15], key_size, value_size, max_entries, opts)
        if fd < 0:
            raise BpfError(-fd, f"cannot create map '{name}'")
        m = cls(name, map_type, key_size, value_size, max_entries, fd)
        m._owns_fd = True
        return m

    @classmethod
    def from_id(cls, map_id: int) -> Map:
        """Open a map by its kernel id (what a map-in-map lookup returns)."""
        fd = _lib.bpf_map_get_fd_by_id(map_id)
        if fd < 0:
            raise BpfError(-fd, f"cannot open map id {map_id}")
        return cls._from_fd(fd, f"map id {map_id}")

    @classmethod
    def _from_fd(cls, fd: int, what: str) -> Map:
        info = bpf_map_info_head()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        ret = _lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size))
        if ret < 0:
            os.close(fd)
            raise BpfError(-ret, f"cannot read map info of {what}")
        m = cls(info.name.decode(), info.type, info.key_size, info.value_size, info.max_entries, fd)
        m._owns_fd = True
        m.btf_key_type_id, m.btf_value_type_id = info.btf_key_type_id, info.btf_value_type_id
        if info.btf_id:  # the BTF it was created with, for maps made like it (create_inner)
            m.btf_fd = _lib.bpf_btf_get_fd_by_id(info.btf_id)
            m._owns_btf_fd = m.btf_fd >= 0
        return m

    def info(self) -> bpf_map_info_head:
        """What the kernel says of the map now (its id, its size after any resize)."""
        info = bpf_map_info_head()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        ret = _lib.bpf_obj_get_info_by_fd(self.fd, ctypes.byref(info), ctypes.byref(size))
        if ret < 0:
            raise BpfError(-ret, f"cannot read map info of '{self.name}'")
        return info

    @property
    def id(self) -> int:
        """The kernel's id of the map (another process opens it by this)."""
        return self.info().id

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise BpfError(errno.EBADF, f"map '{self.name}' is not loaded or already closed")
        return self._fd

    @property
    def percpu(self) -> bool:
        return self.type in _lib.PERCPU_MAP_TYPES

    @property
    def percpu_stride(self) -> int:
        """Bytes per CPU of a per-CPU value: the kernel copies one value per
        possible CPU, each rounded up to 8 bytes."""
        return (self.value_size + 7) & ~7

    def set_max_entries(self, n: int) -> None:
        """Before the object is loaded: resize the map (ring buffers: bytes,
        a power of two and a multiple of the page size)."""
        if self._ptr is None or self._fd >= 0:
            raise BpfError(errno.EBUSY, f"map '{self.name}' can be resized only before its object is loaded")
        ret = _lib.bpf_map__set_max_entries(self._ptr, n)
        if ret < 0:
            raise BpfError(-ret, f"resize of map '{self.name}' to {n}")
        self.max_entries = n

    def set_inner_template(self, template: Map) -> None:
        """Before the object is loaded: a map of maps takes `template` (a map
        of our own, Map.create) as the kind of map its values are, instead
        of the one the object declares; e.g. inner maps whose value size is
        chosen at run time. Close the template once the object is loaded."""
        if self._ptr is None or self._fd >= 0:
            raise BpfError(errno.EBUSY, f"map '{self.name}' takes an inner template only before its object is loaded")
        ret = _lib.bpf_map__set_inner_map_fd(self._ptr, template.fd)
        if ret < 0:
            raise BpfError(-ret, f"inner template of map '{self.name}'")
        self._inner = None  # libbpf dropped the declared one

    def initial_value(self) -> ctypes.Array:
        """Before the object is loaded: the bytes a global data map (.rodata,
        .data) starts with, writable in place (libbpf's own buffer)."""
        if self._ptr is None or self._fd >= 0:
            raise BpfError(errno.EBUSY, f"map '{self.name}' has its initial value only before its object is loaded")
        size = ctypes.c_size_t()
        address = _lib.bpf_map__initial_value(self._ptr, ctypes.byref(size))
        if not address:
            raise BpfError(errno.EINVAL, f"map '{self.name}' is not a global data map")
        return (ctypes.c_uint8 * size.value).from_address(address)

    @property
    def inner(self) -> Map | None:
        """A map-in-map's template of its inner maps (type, sizes, BTF types),
        as the object declares it; None for other maps."""
        return self._inner

    def create_inner(self, btf_fd: int | None = None) -> Map:
        """A new map like this map-in-map's inner template, to fill and then
        put in as a value (close it after: the outer map keeps it alive).

        With the template's BTF types too: kernels compare inner maps with
        the template by what BTF makes of the value (6.1: its timer offset,
        which a map without BTF has not), so a map created without them is
        refused (EINVAL) where the template has them. `btf_fd`: the object's
        BTF (default: the one this map was loaded with)."""
        t = self._inner
        if t is None:
            raise BpfError(errno.EINVAL, f"map '{self.name}' is not a map of maps")
        btf = None
        if t.btf_value_type_id:
            fd = btf_fd if btf_fd is not None else self.btf_fd
            btf = (fd, t.btf_key_type_id, t.btf_value_type_id)
        inner = Map.create(t.name, t.type, t.key_size, t.value_size, t.max_entries, btf)
        inner.btf_key_type_id, inner.btf_value_type_id = t.btf_key_type_id, t.btf_value_type_id
        return inner

    def pin(self, path: str | os.PathLike) -> None:
        ret = _lib.bpf_obj_pin(self.fd, os.fsencode(path))
        if ret < 0:
            raise BpfError(-ret, f"cannot pin map '{self.name}' at {path}")

    def bind(self, key_type: type, value_type: type) -> Map:
        """Declare the ctypes mirrors of key and value; sizes must match."""
        for what, ctype, size in (("key", key_type, self.key_size), ("value", value_type, self.value_size)):
            if ctypes.sizeof(ctype) != size:
                raise TypeError(
                    f"map '{self.name}': {what} mirror {ctype.__name__} is {ctypes.sizeof(ctype)} bytes, "
                    f"the map's {what} is {size} bytes"
                )
        self.key_type, self.value_type = key_type, value_type
        return self

    # -- conversions -------------------------------------------------------
    def _key(self, key):
        if self.key_type is None:
            raise TypeError(f"map '{self.name}': call bind(key_type, value_type) first")
        return key if isinstance(key, self.key_type) else self.key_type(key)

    def _value(self, value):
        return value if isinstance(value, self.value_type) else self.value_type(value)

    def _value_buffer(self):
        if not self.percpu:
            return self.value_type()
        return ctypes.create_string_buffer(self.percpu_stride * possible_cpus())

    def _decode(self, buf):
        if not self.percpu:
            return _plain(buf)
        stride = self.percpu_stride
        return [_plain(self.value_type.from_buffer_copy(buf.raw, i * stride)) for i in range(possible_cpus())]

    # -- raw bytes (what a BTF codec makes) ------------------------------
    def update_raw(self, key: bytes, value: bytes, flags: int = _lib.BPF_ANY) -> None:
        """Update with the key's and the value's bytes (a per-CPU map gets
        the value on every CPU)."""
        if len(key) != self.key_size or len(value) != self.value_size:
            raise TypeError(f"map '{self.name}': key of {len(key)} and value of {len(value)} bytes, the map's are "
                            f"{self.key_size} and {self.value_size}")
        if self.percpu:
            value = b"".join(value.ljust(self.percpu_stride, b"\0") for _ in range(possible_cpus()))
        k, v = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value, len(value))
        ret = _lib.bpf_map_update_elem(self.fd, k, v, flags)
        if ret < 0:
            raise BpfError(-ret, f"update of map '{self.name}'")

    def items_raw(self) -> Iterator[tuple[bytes, list[bytes]]]:
        """(key, [value per CPU] or [value]) as bytes, for every entry."""
        cur, nxt = None, ctypes.create_string_buffer(self.key_size)
        stride = self.percpu_stride
        cpus = possible_cpus() if self.percpu else 1
        while _lib.bpf_map_get_next_key(self.fd, cur, nxt) == 0:
            cur = ctypes.create_string_buffer(nxt.raw, self.key_size)
            value = ctypes.create_string_buffer(stride * cpus if self.percpu else self.value_size)
            if _lib.bpf_map_lookup_elem(self.fd, cur, value) == 0:
                yield cur.raw, [value.raw[i * stride:i * stride + self.value_size] for i in range(cpus)]

    def array_values_raw(self) -> bytes:
        """Every value of an array map, index order, in one system call
        (BPF_MAP_LOOKUP_BATCH) instead of one per entry: value i at
        i * value_size; for a per-CPU array, entry i's value on CPU c at
        (i * cpus + c) * stride, stride being value_size rounded up to 8
        (the kernel's layout for per-CPU values)."""
        if self.type not in (_lib.BPF_MAP_TYPE_ARRAY, _lib.BPF_MAP_TYPE_PERCPU_ARRAY):
            raise BpfError(errno.EINVAL, f"map '{self.name}' is not an array")
        n = self.max_entries
        if not self.percpu and self.value_size % 8 == 0 and self.info().map_flags & BPF_F_MMAPABLE:
            # Its values are the kernel's own memory, mapped: one copy, no
            # system call per entry (the batch lookup copies entry by entry:
            # 23 ms for a hundred thousand).
            with mmap.mmap(self.fd, n * self.value_size, mmap.MAP_SHARED, mmap.PROT_READ) as mapped:
                return mapped[:]
        per_entry = self.percpu_stride * possible_cpus() if self.percpu else self.value_size
        keys = ctypes.create_string_buffer(4 * n)
        values = ctypes.create_string_buffer(per_entry * n)
        out_batch = ctypes.c_uint32()
        count = ctypes.c_uint32(n)
        ret = _lib.bpf_map_lookup_batch(self.fd, None, ctypes.byref(out_batch), keys, values, ctypes.byref(count), None)
        if ret in _NO_BATCH:
            raise NotSupported(-ret, f"batch lookup in map '{self.name}'")
        if ret < 0 and ret != -errno.ENOENT:  # ENOENT: the last batch, which is all of it
            raise BpfError(-ret, f"batch lookup in map '{self.name}'")
        if count.value != n:
            raise BpfError(errno.EIO, f"batch lookup in map '{self.name}' returned {count.value} of {n} entries")
        return values.raw

    def counter_sums(self) -> list[int]:
        """A per-CPU array of u64 counters, each entry summed over the CPUs,
        read in one system call (a verdict table read per packet in a test
        was ten lookups: seconds under emulation); one lookup per entry on
        kernels without batches for per-CPU arrays (before 5.13)."""
        if not self.percpu or self.type != _lib.BPF_MAP_TYPE_PERCPU_ARRAY or self.value_size != 8:
            raise BpfError(errno.EINVAL, f"map '{self.name}' is not a per-CPU array of u64 counters")
        cpus = possible_cpus()
        try:
            raw = self.array_values_raw()
        except NotSupported:
            raw = b"".join(self._entry_raw(i, 8 * cpus) for i in range(self.max_entries))  # before 5.13
        counts = struct.unpack(f"={self.max_entries * cpus}Q", raw)
        return [sum(counts[i * cpus:(i + 1) * cpus]) for i in range(self.max_entries)]

    def _entry_raw(self, index: int, size: int) -> bytes:
        value = ctypes.create_string_buffer(size)
        ret = _lib.bpf_map_lookup_elem(self.fd, ctypes.byref(ctypes.c_uint32(index)), value)
        if ret < 0:
            raise BpfError(-ret, f"lookup in map '{self.name}'")
        return value.raw

    # -- operations --------------------------------------------------------
    def lookup(self, key):
        """The value (a list, one per CPU, for per-CPU maps), or None."""
        k = self._key(key)
        buf = self._value_buffer()
        ret = _lib.bpf_map_lookup_elem(self.fd, ctypes.byref(k), ctypes.byref(buf))
        if ret == -errno.ENOENT:
            return None
        if ret < 0:
            raise BpfError(-ret, f"lookup in map '{self.name}'")
        return self._decode(buf)

    def update(self, key, value, flags: int = _lib.BPF_ANY) -> None:
        k = self._key(key)
        if self.percpu:
            stride = self.percpu_stride
            values = value if isinstance(value, (list, tuple)) else [value] * possible_cpus()
            buf = ctypes.create_string_buffer(stride * possible_cpus())
            for i, v in enumerate(values):
                raw = bytes(self._value(v))
                buf[i * stride : i * stride + len(raw)] = raw
        else:
            buf = self._value(value)
        ret = _lib.bpf_map_update_elem(self.fd, ctypes.byref(k), ctypes.byref(buf), flags)
        if ret < 0:
            raise BpfError(-ret, f"update of map '{self.name}'")

    def update_many(self, items: list[tuple]) -> None:
        """Update several entries in one system call (BPF_MAP_UPDATE_BATCH;
        one by one where the kernel has no batch for this map type). For maps
        of maps this matters: the kernel waits for running programs (an RCU
        grace period, ms) after every update call, so a batch waits once."""
        if not items:
            return
        if self.percpu:
            raise BpfError(errno.EINVAL, f"map '{self.name}': update_many takes plain (not per-CPU) maps")
        keys = b"".join(bytes(self._key(k)) for k, _ in items)
        values = b"".join(bytes(self._value(v)) for _, v in items)
        count = ctypes.c_uint32(len(items))
        ret = _lib.bpf_map_update_batch(self.fd, keys, values, ctypes.byref(count), None)
        if ret in _NO_BATCH and count.value in (0, len(items)):  # unsupported: count untouched
            for done, (key, value) in enumerate(items):
                try:
                    self.update(key, value)
                except BpfError as exc:
                    raise BatchError(exc.errno, exc.what, done) from exc
            return
        if ret < 0:  # the entries before it are in
            raise BatchError(-ret, f"update of map '{self.name}' (entry {count.value + 1} of {len(items)})", count.value)

    def delete_many(self, keys: list, missing_ok: bool = False) -> int:
        """Delete several entries in one system call where the kernel can
        (BPF_MAP_DELETE_BATCH), one by one where it cannot; a key that is not
        there is an error unless `missing_ok` (an LRU map may have evicted
        it meanwhile). Returns how many were deleted."""
        raw = b"".join(bytes(self._key(k)) for k in keys)
        size, start, deleted = self.key_size, 0, 0
        while start < len(keys):
            count = ctypes.c_uint32(len(keys) - start)
            ret = _lib.bpf_map_delete_batch(self.fd, raw[start * size:], ctypes.byref(count), None)
            if ret in _NO_BATCH and count.value in (0, len(keys) - start):
                for key in keys[start:]:
                    if self.delete(key):
                        deleted += 1
                    elif not missing_ok:
                        raise BpfError(errno.ENOENT, f"delete from map '{self.name}': no such key")
                return deleted
            deleted += count.value if ret < 0 else len(keys) - start
            if ret == -errno.ENOENT and missing_ok:
                start += count.value + 1  # skip the missing one, go on after it
                continue
            if ret < 0:
                raise BpfError(-ret, f"delete from map '{self.name}' (entry {start + count.value + 1} of {len(keys)})")
            break
        return deleted

    def items_batch(self) -> list[tuple]:
        """Every (key, value) of a hash map (plain, LRU) read in batches
        (BPF_MAP_LOOKUP_BATCH, thousands per system call) instead of two
        calls per entry; items() where the kernel has no batch for the map."""
        if self.percpu:
            return list(self.items())
        if self.key_type is None:
            raise TypeError(f"map '{self.name}': call bind(key_type, value_type) first")
        chunk = max(1, min(self.max_entries, 8192))
        keys = ctypes.create_string_buffer(self.key_size * chunk)
        values = ctypes.create_string_buffer(self.value_size * chunk)
        token_in, token_out = ctypes.c_uint64(), ctypes.c_uint64()  # the map's own batch cursor
        out, first = [], True
        while True:
            count = ctypes.c_uint32(chunk)
            ret = _lib.bpf_map_lookup_batch(self.fd, None if first else ctypes.byref(token_in),
                                            ctypes.byref(token_out), keys, values, ctypes.byref(count), None)
            if first and ret in _NO_BATCH:
                return list(self.items())
            if ret < 0 and ret != -errno.ENOENT:
                raise BpfError(-ret, f"batch lookup in map '{self.name}'")
            out.extend(zip(_decode_many(self.key_type, keys, count.value),
                           _decode_many(self.value_type, values, count.value), strict=True))
            if ret == -errno.ENOENT:  # that was the last batch
                return out
            token_in.value, first = token_out.value, False

    def delete(self, key) -> bool:
        """Delete key; False if it was not there."""
        ret = _lib.bpf_map_delete_elem(self.fd, ctypes.byref(self._key(key)))
        if ret == -errno.ENOENT:
            return False
        if ret < 0:
            raise BpfError(-ret, f"delete from map '{self.name}'")
        return True

    def keys(self) -> Iterator:
        if self.key_type is None:
            raise TypeError(f"map '{self.name}': call bind(key_type, value_type) first")
        cur = None
        nxt = self.key_type()
        while True:
            ret = _lib.bpf_map_get_next_key(self.fd, ctypes.byref(cur) if cur is not None else None, ctypes.byref(nxt))
            if ret == -errno.ENOENT:
                return
            if ret < 0:
                raise BpfError(-ret, f"iterating map '{self.name}'")
            cur = self.key_type.from_buffer_copy(nxt)
            yield _plain(cur)

    def items(self) -> Iterator[tuple]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:  # deleted while we iterated
                yield key, value

    def clear(self) -> None:
        for key in list(self.keys()):
            self.delete(key)

    def close(self) -> None:
        if self._owns_fd and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        if self._owns_btf_fd and self.btf_fd >= 0:
            os.close(self.btf_fd)
        self.btf_fd, self._owns_btf_fd = -1, False

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _decode_many(ctype, buf, n: int) -> list:
    """n packed ctypes values from buf, as _plain() gives them."""
    size = ctypes.sizeof(ctype)
    if issubclass(ctype, ctypes._SimpleCData):  # noqa: SLF001 - ctypes' base of scalars has no public name
        return [ctype.from_buffer_copy(buf, i * size).value for i in range(n)]
    return [ctype.from_buffer_copy(buf, i * size) for i in range(n)]


def _plain(value):
    """Scalars come back as ints; structs stay ctypes structs (copied)."""
    if isinstance(value, ctypes._SimpleCData):  # noqa: SLF001 - ctypes' base of scalars has no public name
        return value.value
    return type(value).from_buffer_copy(value)
