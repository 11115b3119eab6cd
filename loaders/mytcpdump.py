"""mytcpdump: a live stream of IPv4 packets from a ring buffer.

    python -m bpflab.loaders.mytcpdump IFACE [--netns NS] [--mode native|generic] [--json] [--count N]

One line per packet: protocol, src[:port] -> dst[:port], length (the IP
total length). Events that found the ring full are counted by the program
and reported on stderr, periodically and at exit.
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import socket
import sys

import numpy as np

from bpflab.libbpf import BpfObject
from bpflab.loaders import cli
from bpflab.loaders.events import StreamingLoader
from bpflab.loaders.protocols import ip_str, protocol_name

MTD_F_PORTS, MTD_F_FRAGMENT, MTD_F_L4_TRUNCATED = 1, 2, 4
# 128k events: a burst of 20 ms at 6 Mpps fits while the reader sleeps
# (a reader woken by a full ring has already lost events).
DEFAULT_RING_BYTES = 4 << 20


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


def _host_order(column: np.ndarray, big_endian: str) -> list[int]:
    """A __be16/__be32 column (read as native integers) as host numbers."""
    return np.ascontiguousarray(column).view(big_endian).tolist()


def decode_columns(records: np.ndarray) -> dict[str, np.ndarray]:
    """A batch of packet_event records decoded whole: host-order numbers,
    ports -1 where the event has none (Event's None), flags as booleans."""
    flags = records["flags"]
    ports = (flags & MTD_F_PORTS) != 0

    def host(column, big_endian):
        return np.ascontiguousarray(column).view(big_endian).astype(np.int64)

    return {"proto": records["protocol"].astype(np.int64), "src": host(records["saddr"], ">u4"),
            "sport": np.where(ports, host(records["sport"], ">u2"), -1), "dst": host(records["daddr"], ">u4"),
            "dport": np.where(ports, host(records["dport"], ">u2"), -1), "len": records["len"].astype(np.int64),
            "fragment": (flags & MTD_F_FRAGMENT) != 0, "l4_truncated": (flags & MTD_F_L4_TRUNCATED) != 0}


class _Names:
    """Dotted quads and protocol names, each formatted once: a capture sees
    few distinct addresses, and a dict lookup is far cheaper than inet_ntoa."""

    LIMIT = 1 << 16

    def __init__(self):
        self.ips: dict[int, str] = {}
        self.protos: dict[int, tuple[str, str]] = {}

    def ip(self, host_order: int) -> str:
        text = self.ips.get(host_order)
        if text is None:
            if len(self.ips) >= self.LIMIT:
                self.ips.clear()
            text = self.ips[host_order] = socket.inet_ntoa(host_order.to_bytes(4, "big"))
        return text

    def proto(self, number: int) -> tuple[str, str]:
        """(name, name as a JSON string)."""
        if number not in self.protos:
            name = protocol_name(number)
            self.protos[number] = (name, json.dumps(name))
        return self.protos[number]


def format_batch(records: np.ndarray, as_json: bool, names: _Names | None = None) -> list[str]:
    """A batch of packet_event records as the lines Event.line() or
    json.dumps(Event.as_json()) would print, without an object per event:
    columns come out of numpy whole, and only the line is built per event."""
    names = names or _Names()
    flags = records["flags"].tolist()
    rows = zip(records["protocol"].tolist(), _host_order(records["saddr"], ">u4"), _host_order(records["sport"], ">u2"),
               _host_order(records["daddr"], ">u4"), _host_order(records["dport"], ">u2"), records["len"].tolist(),
               flags, strict=True)
    ip, proto = names.ip, names.proto
    lines = []
    append = lines.append
    for number, saddr, sport, daddr, dport, length, flag in rows:
        ports = flag & MTD_F_PORTS
        name, name_json = proto(number)
        if as_json:
            append(f'{{"proto": {number}, "src": "{ip(saddr)}", "sport": {sport if ports else "null"}, '
                   f'"dst": "{ip(daddr)}", "dport": {dport if ports else "null"}, "len": {length}, '
                   f'"fragment": {"true" if flag & MTD_F_FRAGMENT else "false"}, '
                   f'"l4_truncated": {"true" if flag & MTD_F_L4_TRUNCATED else "false"}, "proto_name": {name_json}}}')
        else:
            src, dst = (f"{ip(saddr)}:{sport}", f"{ip(daddr)}:{dport}") if ports else (ip(saddr), ip(daddr))
            notes = ((" [fragment]" if flag & MTD_F_FRAGMENT else "")
                     + (" [truncated L4 header]" if flag & MTD_F_L4_TRUNCATED else "")) if flag & (MTD_F_FRAGMENT | MTD_F_L4_TRUNCATED) else ""
            append(f"{name} {src} -> {dst} len={length}{notes}")
    return lines


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

    def format_batch(self, records: np.ndarray, as_json: bool) -> list[str]:
        if not hasattr(self, "_names"):
            self._names = _Names()
        return format_batch(records, as_json, self._names)


open_stream = MyTcpdump.stream_of


def parser():
    return cli.stream_parser(MyTcpdump)


def main(argv: list[str] | None = None) -> int:
    return cli.stream_main(MyTcpdump, argv)

if __name__ == "__main__":
    cli.run("mytcpdump", lambda: main(sys.argv[1:]))
