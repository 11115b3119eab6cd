"""packet_inspect: source, destination and protocol of every IPv4 packet.

    python -m bpflab.loaders.packet_inspect IFACE [--netns NS] [--mode native|generic] [--json] [--count N]
"""
from __future__ import annotations

import ctypes
import dataclasses
import sys

from bpflab.loaders import cli
from bpflab.loaders.events import StreamingLoader
from bpflab.loaders.protocols import ip_str, protocol_name


class InspectEvent(ctypes.Structure):
    """Mirror of struct inspect_event (bpf/packet_inspect.h)."""

    _fields_ = [("saddr", ctypes.c_uint32), ("daddr", ctypes.c_uint32), ("protocol", ctypes.c_uint8),
                ("pad", ctypes.c_uint8 * 3)]


@dataclasses.dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    proto: int

    @property
    def proto_name(self) -> str:
        return protocol_name(self.proto)

    def line(self) -> str:
        return f"{self.src} -> {self.dst} {self.proto_name}"

    def as_json(self) -> dict:
        return {"src": self.src, "dst": self.dst, "proto": self.proto, "proto_name": self.proto_name}


def decode(ev: InspectEvent) -> Packet:
    return Packet(ip_str(ev.saddr), ip_str(ev.daddr), ev.protocol)


class PacketInspect(StreamingLoader):
    """Print source, destination and protocol of every IPv4 packet on IFACE."""

    name = "packet_inspect"
    ring, drops, event_mirror, event_c_name = "inspect_events", "inspect_drops", InspectEvent, "inspect_event"
    decode = staticmethod(decode)


open_stream = PacketInspect.stream_of


def parser():
    return cli.stream_parser(PacketInspect)


def main(argv: list[str] | None = None) -> int:
    return cli.stream_main(PacketInspect, argv)

if __name__ == "__main__":
    cli.run("packet_inspect", lambda: main(sys.argv[1:]))
