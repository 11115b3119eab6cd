"""hello: attach the hello XDP program and stream its trace lines.

    python -m bpflab.loaders.hello IFACE [--netns NS] [--mode native|generic]
"""
from __future__ import annotations

import sys
from collections.abc import Iterator

from bpflab.host.tracefs import TraceInstance

from . import cli
from .attach import LoadedXdp

TRACE_TAG = "bpflab hello:"


class Hello(LoadedXdp):
    """hello attached to an interface, with a private trace reader."""

    def __init__(self, iface: str, **kwargs):
        super().__init__("hello", iface, **kwargs)
        try:
            self.trace = TraceInstance("hello", glob=f"*{TRACE_TAG}*")
        except BaseException:
            super().close()
            raise

    def lines(self, timeout: float | None = None) -> Iterator[str]:
        """hello's trace lines (the whole tracefs line) as they arrive."""
        return self.trace.lines(timeout)

    def close(self) -> None:
        if getattr(self, "trace", None) is not None:
            self.trace.close()
        super().close()


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("hello", "Attach hello to IFACE and print its trace lines until Ctrl-C.")
    cli.add_interface_args(p, "hello")
    args = p.parse_args(argv)
    cli.require_root()
    cli.require_object(args.object)
    with Hello(args.iface, netns=args.netns, mode=args.mode, obj=args.object, force=args.force) as hello:
        print(f"hello: attached to {hello.where()}", flush=True)
        try:
            while True:
                for line in hello.lines(timeout=1.0):
                    print(line, flush=True)
                cli.check_interface(hello)  # after a quiet second
        finally:
            hello.close()
            print(f"hello: detached from {args.iface}", flush=True)
    return 0


if __name__ == "__main__":
    cli.run("hello", lambda: main(sys.argv[1:]))
