"""Frames across a topology's links, addressed from the topology itself (no
MAC or address written twice)."""
from __future__ import annotations

from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from bpflab.lab.topology import Topology


def towards_peer(topology: Topology, node: str, ifname: str = "eth0", *, src: str | None = None,
                 dst: str | None = None) -> Packet:
    """Ether()/IP() of a frame `node` sends out of `ifname`: from its MAC and
    address to its link peer's (`src`/`dst` replace the IP addresses, e.g.
    a client sending to a VIP). Add the L4 header and payload with `/`."""
    me, peer = topology.endpoint(node, ifname), topology.peer(node, ifname)
    return Ether(src=me.mac, dst=peer.mac) / IP(src=src or me.ip, dst=dst or peer.ip)
