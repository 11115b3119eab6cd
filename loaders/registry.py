"""Every program bpflab ships, with its loader: one list for the tests,
the fuzzing, the benchmarks and the command lines."""
from __future__ import annotations

import dataclasses

from .base import Loader
from .connection_tracker import ConnectionTracker
from .hello import Hello
from .mytcpdump import MyTcpdump
from .packet_counter import PacketCounter
from .packet_inspect import PacketInspect
from .xdp_dnat import XdpDnat


@dataclasses.dataclass(frozen=True)
class Program:
    loader: type[Loader]

    @property
    def name(self) -> str:
        return self.loader.name

    @property
    def module(self) -> str:
        """For `python -m`."""
        return f"bpflab.loaders.{self.name}"

    @property
    def summary(self) -> str:
        return self.loader.__doc__.strip().splitlines()[0]


PROGRAMS: dict[str, Program] = {p.name: p for p in (
    Program(Hello),
    Program(PacketInspect),
    Program(PacketCounter),
    Program(ConnectionTracker),
    Program(MyTcpdump),
    Program(XdpDnat),
)}
