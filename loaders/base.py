"""The loader every program's loader extends: load build/NAME.bpf.o,
attach its XDP program to an interface of a namespace through a bpf_link,
and take everything down again, whatever happened on the way.

A loader sets `name` (the object and, by default, its XDP program) and
extends the steps it needs; each runs once, in this order:

    configure(obj)   before the object is loaded: resize maps, claim things
    setup(obj)       loaded, not yet attached: readers, mirrors checked, maps filled
    attached()       attached: what depends on the attachment
    detaching()      before detaching: undo setup() and attached()

If any step fails, everything already done is undone and the error goes on
(the one place that guard is written). close(), or leaving a `with` block,
undoes everything.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from bpflab.host.interrupts import cleaned
from bpflab.host.netns import ifindex
from bpflab.libbpf import AlreadyAttached, Attachment, BpfObject, Program
from bpflab.loaders.interfaces import XdpOnInterface, detach_any
from bpflab.loaders.objects import object_path


class Loader(Attachment):
    """A program of this repository attached to an interface: a subclass per
    program says how (the steps below); close() detaches and unloads it."""

    name: ClassVar[str] = ""
    program_name: ClassVar[str | None] = None  # the XDP program, when not `name`

    def __init__(self, iface: str, *, netns: str | None = None, mode: str | None = None,
                 obj: str | os.PathLike | None = None, force: bool = False):
        self.iface, self.netns = iface, netns
        self.link: XdpOnInterface | None = None
        self._torn_down = False
        ifindex(iface, netns)  # a bad interface fails before anything is loaded
        self.obj = BpfObject(Path(obj) if obj is not None else object_path(self.name), load=False)
        try:
            self.configure(self.obj)
            self.obj.load()
            self.setup(self.obj)
            self.program = self._xdp_program()
            self.link = self._attach(mode, force)
            self.attached()
        except BaseException:
            self.close()
            raise

    # -- the steps, for subclasses ---------------------------------------
    def configure(self, obj: BpfObject) -> None:
        pass

    def setup(self, obj: BpfObject) -> None:
        pass

    def attached(self) -> None:
        pass

    def detaching(self) -> None:
        pass

    # -- the rest --------------------------------------------------------
    def _xdp_program(self) -> Program:
        wanted = self.program_name or self.name
        if wanted not in self.obj.programs and len(self.obj.programs) == 1:
            return next(iter(self.obj.programs.values()))  # --object with its own name for the one program
        return self.obj.program(wanted)

    def _attach(self, mode: str | None, force: bool) -> XdpOnInterface:
        try:
            return XdpOnInterface(self.program.fd, self.iface, self.netns, mode)
        except AlreadyAttached:
            if not force:
                raise
            detach_any(self.iface, self.netns)
            return XdpOnInterface(self.program.fd, self.iface, self.netns, mode)

    @property
    def ifindex(self) -> int:
        return self.link.ifindex

    @property
    def mode(self) -> str | None:
        return self.link.mode

    def interface_gone(self) -> bool:
        """True once the interface (or its namespace) no longer exists: the
        kernel has then dropped the attachment with it."""
        try:
            return ifindex(self.iface, self.netns) != self.link.ifindex
        except LookupError:
            return True

    def where(self) -> str:
        ns = f" in netns {self.netns}" if self.netns else ""
        return f"{self.iface} (ifindex {self.link.ifindex}){ns}, {self.mode} mode"

    def close(self) -> None:
        if not self._torn_down:
            self._torn_down = True
            self.detaching()
        if self.link is not None:
            self.link.close()
            self.link = None
            cleaned(f"detached from {self.iface}")
        self.obj.close()

