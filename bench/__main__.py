"""python -m bpflab.bench [--suite] [--quick]: run the benchmarks, print a table,
write build/bench.json."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

from bpflab.bench import datapath, ringbuf, suite, testrun, topology
from bpflab.loaders.objects import BUILD_DIR


def table(results: dict) -> str:
    lines = [f"bpflab benchmarks, {results['date']}, kernel {results['kernel']}, {results['cpus']} CPUs", ""]
    base = results["test_run_ns"]["baseline"]
    lines.append(f"{'test_run_ns (ns per packet)':<34}{'ns':>8}{'x baseline':>12}")
    for name, ns in results["test_run_ns"].items():
        lines.append(f"  {name:<32}{ns:>8}{ns / base:>12.1f}")
    lines.append("")
    lines.append(f"{'lab_mpps (UDP, client->VIP->backend)':<38}{'Mpps':>8}{'spread %':>10}{'x nft':>8}")
    nft = results["lab_mpps"]["nft_dnat"]["median_mpps"]
    for name, r in results["lab_mpps"].items():
        lines.append(f"  {name:<36}{r['median_mpps']:>8.3f}{r['spread_pct']:>10.1f}{r['median_mpps'] / nft:>8.2f}")
    rb = results["ringbuf_events_per_s"]
    lines += ["", f"ringbuf_events_per_s (Python mytcpdump consumer): {rb['events_per_s']} events/s, "
                  f"{rb['dropped']} of {rb['produced']} dropped (ring {rb['ring_bytes'] // 1024} KiB)"]
    topo = results["topology_ms"]
    lines.append(f"topology_ms (dnat, median of {topo['runs']}): build {topo['build_median_ms']} ms, "
                 f"teardown {topo['teardown_median_ms']} ms")
    if "suite_s" in results:
        lines.append(f"suite_s (kernel suite wall time): -n 1 {results['suite_s']['n1_s']} s, "
                     f"-n 2 {results['suite_s']['n2_s']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bpflab.bench")
    p.add_argument("--suite", action="store_true", help="also time the kernel test suite with -n 1 and -n 2")
    p.add_argument("--runs", type=int, default=3, help="runs per datapath (default 3)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (it loads BPF programs and builds namespaces)", file=sys.stderr)
        return 2
    results = {
        "date": datetime.date.today().isoformat(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "test_run_ns": testrun.measure(),
        "lab_mpps": {mode: datapath.measure(mode, runs=args.runs) for mode in ("xdp_native", "xdp_generic",
                                                                               "nft_dnat")},
        "ringbuf_events_per_s": ringbuf.measure(),
        "topology_ms": topology.measure(),
    }
    if args.suite:
        results["suite_s"] = suite.measure()
    BUILD_DIR.mkdir(exist_ok=True)
    (BUILD_DIR / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten: {BUILD_DIR / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
