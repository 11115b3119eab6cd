"""Open and load a BPF object file; find its programs and maps by name."""
from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from . import _lib
from .errors import BpfError, VerifierError
from .maps import Map

# Per-program verifier log buffer. libbpf asks for a log only when a load
# fails (it retries at log level 1), so a big buffer costs nothing on success.
LOG_BUF_SIZE = 4 << 20
PROG_TYPE_SCHED_CLS, PROG_TYPE_SCHED_ACT, PROG_TYPE_XDP = 3, 4, 6  # enum bpf_prog_type
LOG_LEVEL, LOG_STATS = 1, 4  # BPF_LOG_LEVEL1, BPF_LOG_STATS


class Program:
    def __init__(self, obj: BpfObject, ptr: int):
        self._obj = obj
        self._ptr = ptr
        self.name: str = _lib.bpf_program__name(ptr).decode()
        self.section: str = _lib.bpf_program__section_name(ptr).decode()
        self._log_buf = None

    @property
    def fd(self) -> int:
        fd = _lib.bpf_program__fd(self._ptr)
        if fd < 0:
            raise BpfError(-fd, f"program '{self.name}' is not loaded")
        return fd

    @property
    def type(self) -> int:
        """enum bpf_prog_type: PROG_TYPE_XDP, PROG_TYPE_SCHED_CLS, ..."""
        return _lib.bpf_program__type(self._ptr)

    def set_autoload(self, enabled: bool) -> None:
        _lib.bpf_program__set_autoload(self._ptr, enabled)

    def set_log_level(self, level: int) -> None:
        """The verifier's log level for the next load: LOG_STATS (4) adds its
        statistics (and still its error on a rejection); 1 the whole walk."""
        self.keep_log()
        _lib.bpf_program__set_log_level(self._ptr, level)

    def info(self) -> _lib.bpf_prog_info:
        """The kernel's bpf_prog_info of the loaded program (zero where an
        older kernel has no such field)."""
        info = _lib.bpf_prog_info()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        ret = _lib.bpf_obj_get_info_by_fd(self.fd, ctypes.byref(info), ctypes.byref(size))
        if ret < 0:
            raise BpfError(-ret, f"bpf_prog_info of '{self.name}'")
        return info

    def keep_log(self) -> None:
        """Keep the verifier's log of the next load (verifier_log): a buffer
        of LOG_BUF_SIZE given to libbpf, once."""
        if self._log_buf is None:
            self._log_buf = ctypes.create_string_buffer(LOG_BUF_SIZE)
            _lib.bpf_program__set_log_buf(self._ptr, self._log_buf, LOG_BUF_SIZE)

    @property
    def verifier_log(self) -> str:
        return self._log_buf.value.decode(errors="replace") if self._log_buf else ""

    def test_run(self, data: bytes = b"", **kwargs):
        from .testrun import test_run

        return test_run(self.fd, data, **kwargs)

    def __repr__(self) -> str:
        return f"<Program {self.name} section={self.section}>"


class BpfObject:
    """A loaded BPF object. Use as a context manager: closing it releases
    every program and map fd it holds (attachments hold their own refs)."""

    def __init__(self, path: str | os.PathLike, *, load: bool = True):
        self.path = Path(path)
        self._ptr = None
        if not self.path.is_file():
            raise FileNotFoundError(f"BPF object {self.path} not found")
        with _lib.captured_warnings() as warnings:
            ptr = _lib.bpf_object__open_file(os.fsencode(self.path), None)
        if not ptr:
            raise BpfError(ctypes.get_errno(), f"cannot open BPF object {self.path}", warnings)
        self._ptr = ptr
        self.programs: dict[str, Program] = {}
        self.maps: dict[str, Map] = {}
        p = _lib.bpf_object__next_program(ptr, None)
        while p:
            prog = Program(self, p)
            self.programs[prog.name] = prog
            p = _lib.bpf_object__next_program(ptr, p)
        m = _lib.bpf_object__next_map(ptr, None)
        while m:
            bmap = Map.from_libbpf(m)
            self.maps[bmap.name] = bmap
            m = _lib.bpf_object__next_map(ptr, m)
        self.loaded = False
        if load:
            try:
                self.load()
            except BaseException:
                self.close()
                raise

    def load(self) -> None:
        for prog in self.programs.values():
            prog.keep_log()
        with _lib.captured_warnings() as warnings:
            ret = _lib.bpf_object__load(self._ptr)
        if ret < 0:
            failed = [p for p in self.programs.values() if p.verifier_log]
            if failed:
                raise VerifierError(-ret, failed[0].name, failed[0].verifier_log)
            # Not the verifier: libbpf itself (relocation, externs, maps).
            raise BpfError(-ret, f"cannot load BPF object {self.path}", [w for w in warnings if "failed to load" not in w])
        self.loaded = True
        btf = _lib.bpf_object__btf(self._ptr)
        btf_fd = _lib.btf__fd(btf) if btf else -1
        for bmap in self.maps.values():
            bmap.object_loaded(btf_fd)

    def program(self, name: str) -> Program:
        try:
            return self.programs[name]
        except KeyError:
            raise KeyError(f"no program '{name}' in {self.path} (has: {', '.join(self.programs)})") from None

    def map(self, name: str) -> Map:
        try:
            return self.maps[name]
        except KeyError:
            raise KeyError(f"no map '{name}' in {self.path} (has: {', '.join(self.maps)})") from None

    def set_constant(self, name: str, value: int) -> None:
        """Before the object is loaded: the value of a `const volatile`
        integer global of the program (in .rodata), which the verifier then
        knows as a constant."""
        if self.loaded:
            raise BpfError(errno.EBUSY, f"constant '{name}' can be set only before the object is loaded")
        btf = self.btf
        try:
            offset, size = btf.datasec_variable(".rodata", name)
        finally:
            btf.close()
        rodata = next((m for m in self.maps.values() if m.name.endswith(".rodata")), None)
        if rodata is None:
            raise BpfError(errno.ENOENT, f"no .rodata in {self.path}")
        rodata.initial_value()[offset:offset + size] = list(value.to_bytes(size, "little"))

    @property
    def btf(self):
        from .btf import Btf

        return Btf(_lib.bpf_object__btf(self._ptr), owner=self)

    def close(self) -> None:
        if self._ptr:
            _lib.bpf_object__close(self._ptr)
            self._ptr = None
            for bmap in self.maps.values():
                bmap.object_closed()

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()
