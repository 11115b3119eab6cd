"""What every bpflab command line shares (bpflab, the lab's, the loaders'):
a parser whose complaints are one line, the exit status of bad input, the
argument types, and one line for any error a user can cause."""
from __future__ import annotations

import argparse
import errno
from typing import NoReturn

from bpflab.host.instances import InstanceBusy, NoInstance
from bpflab.host.netns import InterfaceNotFound, NamespaceNotFound
from bpflab.libbpf import AlreadyAttached, BpfError, VerifierError

EXIT_USAGE = 2  # bad input: one line on stderr naming it


class UsageError(ValueError):
    """A problem with what the user asked for; printed as one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; we print only the error line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return value


def describe(exc: BaseException) -> str:
    """One line for an exception a user can cause."""
    if isinstance(exc, VerifierError):
        return str(exc)
    if isinstance(exc, BpfError) and exc.errno == errno.EPERM:
        return f"{exc.what}: permission denied (needs root with CAP_BPF and CAP_NET_ADMIN)"
    if isinstance(exc, (BpfError, AlreadyAttached)):
        return str(exc)
    if isinstance(exc, (UsageError, NamespaceNotFound, InterfaceNotFound, InstanceBusy, NoInstance)):
        return str(exc.args[0]) if exc.args else str(exc)
    return f"{type(exc).__name__}: {exc}"
