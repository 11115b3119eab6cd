"""bpflab benchmarks: `nox -s bench` (python -m bpflab.bench). Ratios measured side
by side in one run; results in docs/results/bench.json."""
