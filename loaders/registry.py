"""Every program bpflab ships, with its loader: one list for the tests,
the fuzzing, the benchmarks and the command lines."""
from __future__ import annotations

import dataclasses

from bpflab.loaders.base import Loader
from bpflab.loaders.connection_tracker import ConnectionTracker
from bpflab.loaders.hello import Hello
from bpflab.loaders.mytcpdump import MyTcpdump
from bpflab.loaders.packet_counter import PacketCounter
from bpflab.loaders.packet_inspect import PacketInspect
from bpflab.loaders.xdp_dnat import XdpDnat


@dataclasses.dataclass(frozen=True)
class ShippedProgram:
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


PROGRAMS: dict[str, ShippedProgram] = {p.name: p for p in (
    ShippedProgram(Hello),
    ShippedProgram(PacketInspect),
    ShippedProgram(PacketCounter),
    ShippedProgram(ConnectionTracker),
    ShippedProgram(MyTcpdump),
    ShippedProgram(XdpDnat),
)}
