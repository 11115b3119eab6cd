"""hello: attach the hello XDP program and stream its trace lines.

    python -m bpflab.loaders.hello IFACE [--netns NS] [--mode native|generic]
"""
from __future__ import annotations

import sys
from collections.abc import Iterator

from bpflab.host.tracefs import TraceInstance
from bpflab.loaders import cli
from bpflab.loaders.base import Loader

TRACE_TAG = "bpflab hello:"


class Hello(Loader):
    """Attach hello to IFACE and print its trace lines until Ctrl-C."""

    name = "hello"

    def __init__(self, iface: str, **kwargs):
        self.trace: TraceInstance | None = None
        super().__init__(iface, **kwargs)

    def setup(self, obj) -> None:
        self.trace = TraceInstance("hello", glob=f"*{TRACE_TAG}*")

    def lines(self, timeout: float | None = None) -> Iterator[str]:
        """hello's trace lines (the whole tracefs line) as they arrive."""
        return self.trace.lines(timeout)

    def detaching(self) -> None:
        if self.trace is not None:
            self.trace.close()
            self.trace = None


def parser():
    return cli.loader_parser(Hello)


def main(argv: list[str] | None = None) -> int:
    args, hello = cli.open_loader(parser(), Hello, argv)
    with hello:  # its close() says it detached, when a signal stops it
        cli.say_attached(hello)
        while True:
            for line in hello.lines(timeout=cli.INTERFACE_CHECK_S):
                print(line, flush=True)
            cli.check_interface(hello)  # after a quiet moment


if __name__ == "__main__":
    cli.run("hello", lambda: main(sys.argv[1:]))
