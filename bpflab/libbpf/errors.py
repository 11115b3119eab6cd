"""The exceptions the binding raises."""
from __future__ import annotations

import errno as _errno
import os
import re


class BpfError(OSError):
    """A libbpf call failed; carries errno, what was being done and, when
    libbpf explained itself, its last warning."""

    def __init__(self, err: int, what: str, libbpf_log: list[str] | None = None):
        err = abs(err) if err else _errno.EINVAL
        self.libbpf_log = libbpf_log or []
        reason = self.libbpf_log[-1] if self.libbpf_log else os.strerror(err)
        super().__init__(err, f"{what}: {reason}")
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
