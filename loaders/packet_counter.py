"""packet_counter: packets per IP protocol number.

    python -m bpflab.loaders.packet_counter IFACE [--netns NS] [--mode ...] [--interval S] [--count N] [--json]
"""
from __future__ import annotations

import ctypes
import sys

from bpflab.libbpf import BpfObject
from bpflab.loaders import cli
from bpflab.loaders.base import Loader
from bpflab.loaders.protocols import protocol_name


def read_counts(obj: BpfObject) -> dict[int, int]:
    """{protocol number: packets}, summed over CPUs, protocols seen only."""
    counts = obj.map("proto_packets").bind(ctypes.c_uint32, ctypes.c_uint64)
    return {proto: total for proto, per_cpu in counts.items() if (total := sum(per_cpu))}


class PacketCounter(Loader):
    """Count packets per IP protocol on IFACE and print the table periodically."""

    name = "packet_counter"
    default_interval = 2.0

    def counts(self) -> dict[int, int]:
        return read_counts(self.obj)

    read = counts  # what the table shows

    @staticmethod
    def render(counts: dict[int, int]) -> str:
        lines = [f"{'protocol':<14}{'packets':>10}"]
        lines += [f"{protocol_name(p) + f' ({p})':<14}{n:>10}" for p, n in sorted(counts.items())]
        return "\n".join(lines) + "\n"

    @staticmethod
    def to_json(counts: dict[int, int]) -> dict[str, int]:
        return {str(k): v for k, v in sorted(counts.items())}


def parser():
    return cli.table_parser(PacketCounter)


def main(argv: list[str] | None = None) -> int:
    return cli.table_main(PacketCounter, argv)

if __name__ == "__main__":
    cli.run("packet_counter", lambda: main(sys.argv[1:]))
