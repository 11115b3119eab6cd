"""What every loader's command line shares: arguments, privilege checks and
turning every failure into one clear line on stderr with exit status 2."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from bpflab.host.commandline import EXIT_USAGE, OneLineParser, UsageError, describe, positive_float, positive_int
from bpflab.host.instances import InstanceBusy, NoInstance
from bpflab.host.interrupts import checkpoint, run_command, tell
from bpflab.host.netns import InterfaceNotFound, NamespaceNotFound
from bpflab.libbpf import BpfError
from bpflab.loaders.objects import object_path
from bpflab.loaders.services import SpecError


class InterfaceGone(Exception):
    """The interface went away while we were attached to it."""


EXIT_GONE = 1


# How often a running loader checks that its interface still exists (one
# if_nametoindex in its namespace: microseconds): a deleted interface ends it
# within this long.
INTERFACE_CHECK_S = 0.25


def check_interface(prog) -> None:
    if prog.interface_gone():
        raise InterfaceGone(f"interface '{prog.iface}' was deleted while attached; exiting")


def parser(prog: str, description: str) -> OneLineParser:
    return OneLineParser(prog=f"python -m bpflab.loaders.{prog}", description=description)


def add_interface_args(p: argparse.ArgumentParser, name: str, *, modes: bool = True) -> None:
    p.add_argument("iface", metavar="IFACE", help="interface to attach to")
    p.add_argument("--netns", metavar="NS", help="network namespace the interface is in (default: current)")
    if modes:
        p.add_argument("--mode", choices=("native", "generic"), help="XDP mode (default: the kernel's choice)")
    p.add_argument("--object", type=Path, default=object_path(name), help=f"BPF object (default: build/{name}.bpf.o)")
    p.add_argument("--force", action="store_true", help="replace an XDP program already on IFACE")


CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF = 12, 21, 39


def effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def require_root() -> None:
    """Loading and attaching need CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN."""
    caps = effective_caps()
    has_bpf = caps & (1 << CAP_BPF) or caps & (1 << CAP_SYS_ADMIN)
    if not (has_bpf and caps & (1 << CAP_NET_ADMIN)):
        raise UsageError("needs root (CAP_BPF and CAP_NET_ADMIN): run it with sudo")


def require_object(path: Path) -> None:
    if not path.is_file():
        name = path.name.removesuffix(".bpf.o")
        raise UsageError(f"BPF object {path} not found: run `make {name}` first")


def run(prog: str, main: Callable[[], int | None]) -> NoReturn:
    """Run main() as a command: SIGINT and SIGTERM stop it (its `finally`
    blocks detach), with one line saying so and 130 or 143
    (bpflab.host.interrupts); every expected failure is one line on stderr
    and exit status 2."""
    logging.basicConfig(level=logging.ERROR, format=f"{prog}: %(name)s: %(message)s")
    logging.getLogger("libbpf").setLevel(logging.CRITICAL)  # we report failures ourselves

    def guarded() -> int:
        try:
            return main() or 0
        except (UsageError, BpfError, NamespaceNotFound, InterfaceNotFound, FileNotFoundError, SpecError, InstanceBusy,
                NoInstance) as exc:
            print(f"{prog}: error: {describe(exc)}", file=sys.stderr)
            return EXIT_USAGE
        except InterfaceGone as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return EXIT_GONE
        except BrokenPipeError:
            # Output piped into `head` and the like: not an error of ours.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0

    sys.exit(run_command(prog, guarded))


def add_table_args(p: argparse.ArgumentParser, default_interval: float) -> None:
    p.add_argument("--interval", type=positive_float, default=default_interval, metavar="S",
                   help=f"seconds between tables (default {default_interval:g})")
    p.add_argument("--count", type=positive_int, metavar="N", help="exit after N tables")
    p.add_argument("--json", action="store_true", help="one JSON document per table, one per line")


def add_stream_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=positive_int, metavar="N", help="exit after N events")
    p.add_argument("--json", action="store_true", help="one JSON object per event, one per line")


def sleep_watching(prog, seconds: float) -> None:
    """Sleep, noticing within INTERFACE_CHECK_S if the interface disappears."""
    import time

    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, INTERFACE_CHECK_S))
        check_interface(prog)


def print_tables(prog, read, render, to_json, args) -> None:
    """Every --interval seconds print the table (or its JSON) until --count."""
    import json

    printed = 0
    while args.count is None or printed < args.count:
        sleep_watching(prog, args.interval)
        data = read()
        print(json.dumps(to_json(data)) if args.json else render(data), flush=True)
        printed += 1


DROP_REPORT_EVERY_S = 5.0


def stream_events(prog, args) -> int:
    """Print each event (a line or JSON), a batch of lines per write; report
    ring-full drops on stderr whenever they grew, at most every few seconds,
    and at exit."""
    import time

    prog_name = prog.name
    say_attached(prog)
    seen, reported_drops, next_report = 0, 0, time.monotonic() + DROP_REPORT_EVERY_S
    try:
        for batch in _forever(prog.stream):
            if batch is None:
                check_interface(prog)
            else:
                lines = prog.format_batch(batch, args.json)
                if args.count is not None:
                    lines = lines[:args.count - seen]
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
                seen += len(lines)
                if args.count is not None and seen >= args.count:
                    break
            if time.monotonic() >= next_report:
                drops = prog.stream.drops()
                if drops != reported_drops:
                    print(f"{prog_name}: {drops - reported_drops} events dropped (ring full)", file=sys.stderr,
                          flush=True)
                    reported_drops = drops
                next_report = time.monotonic() + DROP_REPORT_EVERY_S
    finally:
        say(prog_name, f"{seen} events shown, {prog.stream.drops()} dropped (ring full)")
    return 0


def _forever(stream):
    """Batches of records as they come, with a None at least every
    INTERFACE_CHECK_S, so the caller can do periodic work while the link is
    quiet."""
    while True:
        got = False
        for batch in stream.batches(timeout=INTERFACE_CHECK_S):
            got = True
            yield batch
        if not got:
            yield None


def say(name: str, text: str) -> None:
    """A loader's word about itself (attached, detached, ...): always on
    stderr, so stdout carries only what it shows (events, tables); while it
    stops for a signal, part of the one line that says so."""
    tell(name, text)


def say_attached(loader) -> None:
    say(loader.name, f"attached to {loader.where()}")
    checkpoint("loader-attached")


def loader_parser(loader_cls, add_args=None) -> OneLineParser:
    """A loader's command line: its docstring is its description; the
    interface arguments every loader takes, then its own."""
    p = parser(loader_cls.name, loader_cls.__doc__.strip())
    add_interface_args(p, loader_cls.name)
    if add_args is not None:
        add_args(p)
    return p


def table_parser(loader_cls) -> OneLineParser:
    return loader_parser(loader_cls, lambda p: add_table_args(p, loader_cls.default_interval))


def stream_parser(loader_cls) -> OneLineParser:
    return loader_parser(loader_cls, add_stream_args)


def open_loader(p: OneLineParser, loader_cls, argv):
    """Parse a loader's command line, check privileges and object, and
    open it: (args, loader)."""
    args = p.parse_args(argv)
    require_root()
    require_object(args.object)
    return args, loader_cls(args.iface, netns=args.netns, mode=args.mode, obj=args.object, force=args.force)


def table_main(loader_cls, argv) -> int:
    """The whole command line of a loader that prints a table periodically:
    it has read(), render(data), to_json(data) and default_interval."""
    args, prog = open_loader(table_parser(loader_cls), loader_cls, argv)
    with prog:
        say_attached(prog)
        print_tables(prog, prog.read, prog.render, prog.to_json, args)
    return 0


def stream_main(loader_cls, argv) -> int:
    """The whole command line of a loader that streams ring-buffer events."""
    args, prog = open_loader(stream_parser(loader_cls), loader_cls, argv)
    with prog:
        return stream_events(prog, args)
