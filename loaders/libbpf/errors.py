"""The exceptions the binding raises."""
from __future__ import annotations

import errno as _errno
import os
import re


class BpfError(OSError):
    """A libbpf call failed; carries errno and what was being done."""

    def __init__(self, err: int, what: str):
        err = abs(err) if err else _errno.EINVAL
        super().__init__(err, f"{what}: {os.strerror(err)}")
        self.what = what


_LOG_TRAILER = re.compile(r"^(processed \d+ insns|verification time|stack depth|-- END PROG LOAD LOG --)")


class VerifierError(BpfError):
    """The kernel's verifier rejected a program. `log` is its own text."""

    def __init__(self, err: int, program: str, log: str):
        self.program = program
        self.log = log
        super().__init__(err, f"verifier rejected program '{program}'")
        self.args = (err, f"verifier rejected program '{program}': {self.message}")

    @property
    def message(self) -> str:
        """The verifier's own conclusion: the last line before its statistics."""
        lines = [line for line in self.log.splitlines() if line.strip()]
        while lines and _LOG_TRAILER.match(lines[-1]):
            lines.pop()
        return lines[-1].strip() if lines else "(the kernel gave no verifier log)"

    def __str__(self) -> str:
        return f"verifier rejected program '{self.program}': {self.message}"


def check(ret: int, what: str) -> int:
    """Raise BpfError for libbpf's negative-errno convention, else return ret."""
    if ret < 0:
        raise BpfError(-ret, what)
    return ret
