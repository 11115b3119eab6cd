"""Any object's XDP program, attached by name: the loader for programs
bpflab does not ship (yours)."""
from __future__ import annotations

import os
from pathlib import Path

from bpflab.libbpf import BpfObject
from bpflab.libbpf.btf_codec import dump_map, fill_map
from bpflab.loaders.base import Loader


class AnyProgram(Loader):
    """Load `obj`, fill maps from `maps` ({name: entries}, entries as
    fill_map takes them) before attaching, attach its XDP program `program`
    (default: the only one) to `iface`."""

    def __init__(self, obj: str | os.PathLike, iface: str, *, program: str | None = None,
                 maps: dict[str, list] | None = None, **kwargs):
        self.name = Path(obj).name.removesuffix(".bpf.o").removesuffix(".o")
        self.program_name = program
        self._maps = maps or {}
        super().__init__(iface, obj=obj, **kwargs)

    def setup(self, obj: BpfObject) -> None:
        for name, entries in self._maps.items():
            fill_map(obj, name, entries)

    def dump(self, map_name: str) -> list[dict]:
        """A map's entries, decoded by field name."""
        return dump_map(self.obj, map_name)

    def fill(self, map_name: str, entries: list) -> int:
        return fill_map(self.obj, map_name, entries)
