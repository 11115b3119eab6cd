"""bpflab's network lab: topologies of network namespaces joined by veths,
packet injection and capture, processes inside nodes, and cleanup that
always happens (see lab.owner for how leftovers of dead owners are swept)."""
from bpflab.lab.builder import Lab, build
from bpflab.lab.topology import TOPOLOGIES, Endpoint, Link, Neighbour, Route, Topology, dnat, pair, pair6

__all__ = ["Endpoint", "Lab", "Link", "Neighbour", "Route", "TOPOLOGIES", "Topology", "build", "dnat", "pair", "pair6"]
