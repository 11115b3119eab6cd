"""Running the real command lines from tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lab.patience import patience

REPO = Path(__file__).resolve().parent.parent


def run_cli(module: str, *args: str, timeout: float = 30, unprivileged: bool = False) -> subprocess.CompletedProcess:
    """python -m MODULE args..., to completion. `unprivileged`: with every
    capability dropped (what a non-root user has), still able to read the repo."""
    argv = [sys.executable, "-m", module, *args]
    if unprivileged:
        argv = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *argv]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=patience(timeout),
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def start_cli(module: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-u", "-m", module, *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, exactly one line on stderr, containing every fragment."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, f"exit {result.returncode}, stderr:\n{result.stderr}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]
