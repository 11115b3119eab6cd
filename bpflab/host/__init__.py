"""The host layer: what bpflab needs of this machine, below the loaders and
the lab and above the libbpf binding (which it never needs)."""
