"""suite_s: wall time of the kernel test suite, serially and with -n 2."""
from __future__ import annotations

import subprocess
import sys
import time

from bpflab.host.paths import REPO_ROOT


def measure() -> dict:
    out = {}
    for workers in ("1", "2"):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", workers],
                                cwd=REPO_ROOT, capture_output=True, text=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        if result.returncode != 0:
            raise RuntimeError(f"the suite failed with -n {workers}:\n{result.stdout[-3000:]}")
        out[f"n{workers}_s"] = round(time.perf_counter() - start, 1)
    return out
