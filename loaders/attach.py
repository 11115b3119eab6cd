"""Load a BPF object and attach one of its XDP programs: the part every
loader shares, usable from Python and from the command lines."""
from __future__ import annotations

import os
from pathlib import Path

from bpflab.host.netns import ifindex
from bpflab.libbpf import AlreadyAttached, BpfObject

from .interfaces import XdpAttachment, detach_any
from .objects import object_path


class LoadedXdp:
    """An object loaded and its program `program` attached to `iface`.

    Closing it (or leaving the with block) detaches and frees everything."""

    def __init__(
        self,
        name: str,
        iface: str,
        *,
        netns: str | None = None,
        mode: str | None = None,
        obj: str | os.PathLike | None = None,
        program: str | None = None,
        force: bool = False,
        before_load=None,
    ):
        self.iface, self.netns = iface, netns
        path = Path(obj) if obj is not None else object_path(name)
        ifindex(iface, netns)  # fail on a bad interface before loading anything
        self.obj = BpfObject(path, load=False)
        try:
            if before_load is not None:
                before_load(self.obj)  # e.g. resize a map
            self.obj.load()
            self.program = self.obj.program(program or name) if (program or name) in self.obj.programs or len(
                self.obj.programs
            ) != 1 else next(iter(self.obj.programs.values()))
            try:
                self.link = XdpAttachment(self.program.fd, iface, netns, mode)
            except AlreadyAttached:
                if not force:
                    raise
                detach_any(iface, netns)
                self.link = XdpAttachment(self.program.fd, iface, netns, mode)
        except BaseException:
            self.obj.close()
            raise

    def interface_gone(self) -> bool:
        """True once the interface (or its namespace) no longer exists: the
        kernel has then dropped the attachment with it."""
        try:
            return ifindex(self.iface, self.netns) != self.link.ifindex
        except LookupError:
            return True

    @property
    def mode(self) -> str | None:
        return self.link.mode

    def where(self) -> str:
        ns = f" in netns {self.netns}" if self.netns else ""
        return f"{self.iface} (ifindex {self.link.ifindex}){ns}, {self.mode} mode"

    def close(self) -> None:
        if getattr(self, "link", None) is not None:
            self.link.detach()
        self.obj.close()

    def __enter__(self) -> LoadedXdp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
