"""Frames across a topology's links, addressed from the topology itself (no
MAC or address written twice)."""
from __future__ import annotations

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from bpflab.lab.topology import Topology


def towards_peer(topology: Topology, node: str, ifname: str = "eth0", *, src: str | None = None,
                 dst: str | None = None, family: int | None = None) -> Packet:
    """Ether()/IP() (or Ether()/IPv6()) of a frame `node` sends out of
    `ifname`: from its MAC and address to its link peer's. `src`/`dst`
    replace the addresses (a client sending to a VIP); the family is theirs,
    or `family` (default 4). Add the L4 header and payload with `/`."""
    me, peer = topology.endpoint(node, ifname), topology.peer(node, ifname)
    given = src or dst
    family = family or (6 if given and ":" in given else 4)
    if family == 6:
        if not (me.ip6 or src) or not (peer.ip6 or dst):
            raise ValueError(f"topology {topology.name}: {node}/{ifname} and its peer have no IPv6 addresses")
        return Ether(src=me.mac, dst=peer.mac) / IPv6(src=src or me.ip6, dst=dst or peer.ip6)
    return Ether(src=me.mac, dst=peer.mac) / IP(src=src or me.ip, dst=dst or peer.ip)
