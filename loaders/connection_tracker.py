"""connection_tracker: packets and bytes per {source, destination, protocol}.

    python -m bpflab.loaders.connection_tracker IFACE [--netns NS] [--mode ...] [--interval S] [--count N] [--json]
"""
from __future__ import annotations

import ctypes
import dataclasses
import socket
import sys

from bpflab.libbpf import BpfObject
from bpflab.libbpf.btf import check_mirror
from bpflab.loaders import cli
from bpflab.loaders.base import Loader
from bpflab.loaders.protocols import ip_be32, ip_str, protocol_name

CONN_STAT_TABLE_FULL, CONN_STAT_INSERT_RACE = 0, 1


class ConnKey(ctypes.Structure):
    """Mirror of struct conn_key (bpf/connection_tracker.h)."""

    _fields_ = [("src_ip", ctypes.c_uint32), ("dst_ip", ctypes.c_uint32), ("proto", ctypes.c_uint8),
                ("pad", ctypes.c_uint8 * 3)]

    @classmethod
    def of(cls, src: str, dst: str, proto: int) -> ConnKey:
        return cls(ip_be32(src), ip_be32(dst), proto)  # ctypes zero-fills the pad


class ConnValue(ctypes.Structure):
    """Mirror of struct conn_value."""

    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


@dataclasses.dataclass(frozen=True)
class Conn:
    src: str
    dst: str
    proto: int
    packets: int
    bytes: int


class ConnTable:
    """Typed views of a loaded connection_tracker object's maps."""

    def __init__(self, obj: BpfObject):
        check_mirror(obj.btf, "conn_key", ConnKey)
        check_mirror(obj.btf, "conn_value", ConnValue)
        self.conns = obj.map("conns").bind(ConnKey, ConnValue)
        self.stats = obj.map("conn_stats").bind(ctypes.c_uint32, ctypes.c_uint64)

    def table(self) -> list[Conn]:
        rows = [Conn(ip_str(k.src_ip), ip_str(k.dst_ip), k.proto, v.packets, v.bytes) for k, v in self.conns.items()]
        return sorted(rows, key=lambda c: (socket.inet_aton(c.src), socket.inet_aton(c.dst), c.proto))

    def lookup(self, src: str, dst: str, proto: int) -> Conn | None:
        v = self.conns.lookup(ConnKey.of(src, dst, proto))
        return None if v is None else Conn(src, dst, proto, v.packets, v.bytes)

    def table_full(self) -> int:
        """Packets of new flows that found the table full."""
        return sum(self.stats.lookup(CONN_STAT_TABLE_FULL))

    def insert_races(self) -> int:
        """First packets of a flow that another CPU inserted at the same
        moment (they were added to its entry, not lost)."""
        return sum(self.stats.lookup(CONN_STAT_INSERT_RACE))


class ConnectionTracker(Loader):
    """Count packets and bytes per connection on IFACE, print the table."""

    name = "connection_tracker"
    default_interval = 3.0

    def setup(self, obj: BpfObject) -> None:
        self.conns = ConnTable(obj)

    def table(self) -> list[Conn]:
        return self.conns.table()

    read = table  # what the table shows

    def lookup(self, src: str, dst: str, proto: int) -> Conn | None:
        return self.conns.lookup(src, dst, proto)

    @staticmethod
    def render(rows: list[Conn]) -> str:
        lines = [f"{'src':<16}{'dst':<16}{'proto':<8}{'packets':>10}{'bytes':>12}"]
        lines += [f"{c.src:<16}{c.dst:<16}{protocol_name(c.proto):<8}{c.packets:>10}{c.bytes:>12}" for c in rows]
        return "\n".join(lines) + "\n"

    @staticmethod
    def to_json(rows: list[Conn]) -> list[dict]:
        return [dataclasses.asdict(c) for c in rows]


def parser():
    return cli.table_parser(ConnectionTracker)


def main(argv: list[str] | None = None) -> int:
    return cli.table_main(ConnectionTracker, argv)

if __name__ == "__main__":
    cli.run("connection_tracker", lambda: main(sys.argv[1:]))
