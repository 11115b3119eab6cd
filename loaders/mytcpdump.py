"""mytcpdump: a live stream of IPv4 packets from a ring buffer.

    python -m bpflab.loaders.mytcpdump IFACE [--netns NS] [--mode native|generic] [--json] [--count N]

One line per packet: protocol, src[:port] -> dst[:port], length (the IP
total length). Events that found the ring full are counted by the program
and reported on stderr, periodically and at exit.
"""
from __future__ import annotations

import ctypes
import dataclasses
import socket
import sys

from bpflab.libbpf import BpfObject
from bpflab.loaders import cli
from bpflab.loaders.events import StreamingLoader
from bpflab.loaders.protocols import ip_str, protocol_name

MTD_F_PORTS, MTD_F_FRAGMENT, MTD_F_L4_TRUNCATED = 1, 2, 4
DEFAULT_RING_BYTES = 256 * 1024


class PacketEvent(ctypes.Structure):
    """Mirror of struct packet_event (bpf/mytcpdump.h)."""

    _fields_ = [
        ("saddr", ctypes.c_uint32), ("daddr", ctypes.c_uint32),
        ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16),
        ("len", ctypes.c_uint32), ("protocol", ctypes.c_uint8), ("flags", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 2),
    ]


@dataclasses.dataclass(frozen=True)
class Event:
    proto: int
    src: str
    sport: int | None  # None: no ports (not TCP/UDP, a later fragment, or a truncated header)
    dst: str
    dport: int | None
    len: int
    fragment: bool = False
    l4_truncated: bool = False

    @property
    def proto_name(self) -> str:
        return protocol_name(self.proto)

    def line(self) -> str:
        src = self.src if self.sport is None else f"{self.src}:{self.sport}"
        dst = self.dst if self.dport is None else f"{self.dst}:{self.dport}"
        notes = "".join([" [fragment]" if self.fragment else "", " [truncated L4 header]" if self.l4_truncated else ""])
        return f"{self.proto_name} {src} -> {dst} len={self.len}{notes}"

    def as_json(self) -> dict:
        return {**dataclasses.asdict(self), "proto_name": self.proto_name}


def decode(ev: PacketEvent) -> Event:
    ports = bool(ev.flags & MTD_F_PORTS)
    return Event(
        ev.protocol, ip_str(ev.saddr), socket.ntohs(ev.sport) if ports else None, ip_str(ev.daddr),
        socket.ntohs(ev.dport) if ports else None, ev.len,
        bool(ev.flags & MTD_F_FRAGMENT), bool(ev.flags & MTD_F_L4_TRUNCATED),
    )


def ring_sizer(ring_bytes: int):
    def resize(obj: BpfObject) -> None:
        obj.map("mytcpdump_events").set_max_entries(ring_bytes)

    return resize


class MyTcpdump(StreamingLoader):
    """Stream one line per IPv4 packet arriving at IFACE."""

    name = "mytcpdump"
    ring, drops, event_mirror, event_c_name = "mytcpdump_events", "mytcpdump_drops", PacketEvent, "packet_event"
    decode = staticmethod(decode)

    def __init__(self, iface: str, *, ring_bytes: int = DEFAULT_RING_BYTES, **kwargs):
        self.ring_bytes = ring_bytes
        super().__init__(iface, **kwargs)

    def configure(self, obj: BpfObject) -> None:
        ring_sizer(self.ring_bytes)(obj)


open_stream = MyTcpdump.stream_of


def main(argv: list[str] | None = None) -> int:
    return cli.stream_main(MyTcpdump, argv)

if __name__ == "__main__":
    cli.run("mytcpdump", lambda: main(sys.argv[1:]))
