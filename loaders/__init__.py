"""Python loaders for the bpflab XDP programs: one module per program,
each runnable as `python -m bpflab.loaders.NAME` and usable as a library."""
