"""One kernel's result, read from pytest's JUnit XML when the command was
pytest (else its exit status): what CI systems read (the file) and what
people read (the table's line)."""
from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


@dataclasses.dataclass
class KernelResult:
    version: str  # as asked for: "5.10", "newest", "host"
    release: str  # what ran: uname -r
    status: str   # "pass", "fail" (the command ran and failed) or "error" (it could not run: no kernel, a VM lost)
    exit: int | None  # the command's exit status (None: it never reported one)
    seconds: float
    junit: str | None
    note: str = ""
    console: str | None = None  # the guest's console, every boot of this run
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    failures: list[str] = dataclasses.field(default_factory=list)  # the failing tests' ids
    command: list[str] = dataclasses.field(default_factory=list)  # what ran there

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    def line(self) -> str:
        counts = (f"{self.passed} passed, {self.skipped} skipped, {self.failed} failed"
                  + (f", {self.errors} errors" if self.errors else "")) if self.junit else \
            (f"exit {self.exit}" if self.exit is not None else "no exit status")
        note = f"  {self.note}" if self.note else ""
        return f"{self.version:<7} {self.release:<28} {self.status.upper():<5}  {counts}  ({self.seconds:.0f} s){note}"


def skip_reason(message: str) -> str:
    """pytest writes "path:line: reason"; the reason is what is the same
    across tests."""
    return re.sub(r"^\S+?:\d+: ", "", message.strip())


def counts_from_junit(path: Path, suite_name: str | None = None) -> dict:
    """passed/failed/errors/skipped (with reasons) and the failing tests'
    ids; renames the test suite to `suite_name` so that CI shows which
    kernel a result came from."""
    tree = ET.parse(path)
    counts, reasons, failures = Counter(), Counter(), []
    for case in tree.iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
            reasons[skip_reason(outcome.get("message", ""))] += 1
        else:
            counts["failed" if outcome.tag == "failure" else "errors"] += 1
            failures.append(test_id)
    if suite_name:
        for suite in tree.iter("testsuite"):
            suite.set("name", suite_name)
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return {"passed": counts["passed"], "failed": counts["failed"], "errors": counts["errors"],
            "skipped": counts["skipped"], "skipped_reasons": dict(reasons), "failures": failures}
