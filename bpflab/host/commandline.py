"""What every bpflab command line shares (bpflab, the lab's, the loaders'):
a parser whose complaints are one line, the exit status of bad input, the
argument types, and one line for any error a user can cause."""
from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path
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


def output_file(text: str) -> Path:
    """An argument naming a file to write: its directory must be there and
    writable, and it must not be a directory, before any work is done."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: no directory {parent}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {text}: permission denied")
    return path


def output_dir(text: str) -> Path:
    """An argument naming a directory to write into (made when it is not
    there): it, or the nearest directory above it that exists, must be a
    writable directory."""
    path = Path(text)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write into {text}: {existing} is not a directory")
    if not os.access(existing, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write into {text}: {existing} is not writable")
    return path
