"""bpflab's network lab: topologies of network namespaces joined by veths,
packet injection and capture, processes inside nodes, and cleanup that
always happens (see lab.owner for how leftovers of dead owners are swept)."""
from bpflab.lab.topology import TOPOLOGIES, Endpoint, Link, Neighbour, Route, Topology, dnat, pair, pair6


def __getattr__(name: str):
    # The builder brings pyroute2 (0.2 s): imported when a lab is first
    # built, not by everything that imports bpflab.lab (the pytest plugin in
    # every session of a user's project).
    if name in ("Lab", "build"):
        from bpflab.lab import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'bpflab.lab' has no attribute {name!r}")

__all__ = ["Endpoint", "Lab", "Link", "Neighbour", "Route", "TOPOLOGIES", "Topology", "build", "dnat", "pair", "pair6"]
