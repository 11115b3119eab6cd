"""packet_counter: packets per IP protocol number.

    python -m loaders.packet_counter IFACE [--netns NS] [--mode ...] [--interval S] [--count N] [--json]
"""
from __future__ import annotations

import ctypes
import sys

from . import cli
from .attach import LoadedXdp
from .libbpf import BpfObject
from .protocols import protocol_name


def read_counts(obj: BpfObject) -> dict[int, int]:
    """{protocol number: packets}, summed over CPUs, protocols seen only."""
    counts = obj.map("proto_packets").bind(ctypes.c_uint32, ctypes.c_uint64)
    return {proto: total for proto, per_cpu in counts.items() if (total := sum(per_cpu))}


class PacketCounter(LoadedXdp):
    def __init__(self, iface: str, **kwargs):
        super().__init__("packet_counter", iface, **kwargs)

    def counts(self) -> dict[int, int]:
        return read_counts(self.obj)


def render(counts: dict[int, int]) -> str:
    lines = [f"{'protocol':<14}{'packets':>10}"]
    lines += [f"{protocol_name(p) + f' ({p})':<14}{n:>10}" for p, n in sorted(counts.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("packet_counter", "Count packets per IP protocol on IFACE and print the table periodically.")
    cli.add_interface_args(p, "packet_counter")
    cli.add_table_args(p, default_interval=2.0)
    args = p.parse_args(argv)
    cli.require_root()
    cli.require_object(args.object)
    with PacketCounter(args.iface, netns=args.netns, mode=args.mode, obj=args.object, force=args.force) as prog:
        print(f"packet_counter: attached to {prog.where()}", file=sys.stderr, flush=True)
        cli.print_tables(prog, prog.counts, render, lambda c: {str(k): v for k, v in sorted(c.items())}, args)
    return 0


if __name__ == "__main__":
    cli.run("packet_counter", lambda: main(sys.argv[1:]))
