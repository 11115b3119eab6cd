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


class NotSupported(BpfError):
    """The kernel lacks what was asked (an operation for this kind of map,
    a feature of a newer kernel): the caller may fall back."""


# The kernel's own ENOTSUPP (524, not in errno) says the same as EOPNOTSUPP.
ENOTSUPP = 524


class BatchError(BpfError):
    """A batch of map updates failed part of the way: `done` entries, the
    first ones, went in (a caller may keep them, or undo them)."""

    def __init__(self, err: int, what: str, done: int):
        super().__init__(err, what)
        self.done = done


# Kernels from 7.3 follow the classic log with a report that starts so.
_DIAGNOSIS = re.compile(r"^Verification failed: (.*)$", re.MULTILINE)
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
        """The verifier's own conclusion: the last line before its statistics,
        or before the diagnostic report newer kernels add (7.3 and later:
        "Verification failed: ...", Reason, At, Suggestion), so a program
        is described by the same line on every kernel that words it alike."""
        lines = [line for line in self._classic_log().splitlines() if line.strip()]
        while lines and _LOG_TRAILER.match(lines[-1]):
            lines.pop()
        return lines[-1].strip() if lines else "(the kernel gave no verifier log)"

    @property
    def diagnosis(self) -> str | None:
        """The headline of the kernel's diagnostic report ("Memory Safety:
        Access outside bounds"), on kernels that write one; None before."""
        match = _DIAGNOSIS.search(self.log)
        return match.group(1).strip() if match else None

    def _classic_log(self) -> str:
        match = _DIAGNOSIS.search(self.log)
        return self.log[:match.start()] if match else self.log

    def __str__(self) -> str:
        return f"verifier rejected program '{self.program}': {self.message}"
