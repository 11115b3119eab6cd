"""topology_ms: building and tearing down the dnat topology."""
from __future__ import annotations

import statistics
import time

from bpflab.lab import builder, dnat


def measure(times: int = 10) -> dict:
    build, teardown = [], []
    for _ in range(times):
        t0 = time.perf_counter()
        lab = builder.build(dnat())
        t1 = time.perf_counter()
        lab.teardown()
        t2 = time.perf_counter()
        build.append((t1 - t0) * 1000)
        teardown.append((t2 - t1) * 1000)
    return {"build_median_ms": round(statistics.median(build), 1),
            "teardown_median_ms": round(statistics.median(teardown), 1), "runs": times}
