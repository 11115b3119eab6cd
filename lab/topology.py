"""Topologies as data: nodes, veth links, routes, neighbours, sysctls.

A Topology says what to build; `lab.builder` builds it. Names here are
logical (node "client", interface "eth0"); the builder gives every node a
network namespace whose name is unique to its owner.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Endpoint:
    node: str
    ifname: str
    address: str | None = None  # "10.0.0.1/24"
    mac: str | None = None
    tx_checksum: bool = True  # False: TX checksum offload off (XDP then sees full checksums)
    gro: bool | None = None  # None: leave the kernel default
    address6: str | None = None  # "fd00:11::1/64": the link is dual-stack

    @property
    def ip(self) -> str | None:
        return self.address.split("/")[0] if self.address else None

    @property
    def ip6(self) -> str | None:
        return self.address6.split("/")[0] if self.address6 else None


@dataclasses.dataclass(frozen=True)
class Link:
    """A veth pair with one end in each node."""

    a: Endpoint
    b: Endpoint


@dataclasses.dataclass(frozen=True)
class Route:
    node: str
    dst: str  # "10.96.0.0/16", "fd00:96::/64", "default" (IPv4) or "default6"
    via: str | None = None
    dev: str | None = None
    type: str = "unicast"  # "local": every address in dst is the node's own (AnyIP)

    @property
    def family(self) -> int:
        return 6 if self.dst == "default6" or ":" in self.dst else 4

    @property
    def prefix(self) -> str:
        return {"default": "0.0.0.0/0", "default6": "::/0"}.get(self.dst, self.dst)


@dataclasses.dataclass(frozen=True)
class Neighbour:
    """A permanent ARP (or, for an IPv6 `ip`, NDP) entry: in `node`, `ip` is
    at `mac` on `dev`. Static, so no test waits on a resolution."""

    node: str
    dev: str
    ip: str
    mac: str


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str
    nodes: dict[str, dict[str, str]]  # node -> sysctls ("net.ipv4.ip_forward": "1")
    links: tuple[Link, ...]
    routes: tuple[Route, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()

    def dual_stack(self, node: str) -> bool:
        """Whether `node` has IPv6 addresses (the others have IPv6 off)."""
        return any(end.node == node and end.address6 for link in self.links for end in (link.a, link.b))

    def endpoint(self, node: str, ifname: str) -> Endpoint:
        for link in self.links:
            for end in (link.a, link.b):
                if end.node == node and end.ifname == ifname:
                    return end
        raise KeyError(f"topology {self.name} has no interface {ifname} in node {node}")

    def peer(self, node: str, ifname: str) -> Endpoint:
        for link in self.links:
            if (link.a.node, link.a.ifname) == (node, ifname):
                return link.b
            if (link.b.node, link.b.ifname) == (node, ifname):
                return link.a
        raise KeyError(f"topology {self.name} has no interface {ifname} in node {node}")


def pair() -> Topology:
    """Two nodes, one link: left 10.11.0.1 <-> right 10.11.0.2."""
    return Topology(
        name="pair",
        nodes={"left": {}, "right": {}},
        links=(
            Link(
                Endpoint("left", "eth0", "10.11.0.1/24", "02:00:00:00:01:01"),
                Endpoint("right", "eth0", "10.11.0.2/24", "02:00:00:00:01:02"),
            ),
        ),
        neighbours=(
            Neighbour("left", "eth0", "10.11.0.2", "02:00:00:00:01:02"),
            Neighbour("right", "eth0", "10.11.0.1", "02:00:00:00:01:01"),
        ),
    )


def pair6() -> Topology:
    """pair, dual-stack: left 10.11.0.1 / fd00:11::1 <-> right 10.11.0.2 /
    fd00:11::2, with permanent neighbour entries for both families (no ARP,
    no NDP). No link-local addresses, DAD or router solicitations cross the
    link, but the kernel sends its MLD reports once the carrier is up (no
    setting stops them): match what you capture on it."""
    left, right = "02:00:00:00:01:01", "02:00:00:00:01:02"
    return Topology(
        name="pair6",
        nodes={"left": {}, "right": {}},
        links=(Link(Endpoint("left", "eth0", "10.11.0.1/24", left, address6="fd00:11::1/64"),
                    Endpoint("right", "eth0", "10.11.0.2/24", right, address6="fd00:11::2/64")),),
        neighbours=(Neighbour("left", "eth0", "10.11.0.2", right), Neighbour("right", "eth0", "10.11.0.1", left),
                    Neighbour("left", "eth0", "fd00:11::2", right), Neighbour("right", "eth0", "fd00:11::1", left)),
    )


VIP = "10.96.0.10"
BACKEND_IP = "10.244.1.5"


def dnat() -> Topology:
    """client -- lb -- backend, as in the original README.

    client (10.0.1.2) reaches the service VIP 10.96.0.10 through lb; the
    backend (10.244.1.5) sits behind lb. lb has no route to the VIP and
    forwarding is on only for its client-facing eth0, where bpf_fib_lookup
    needs it: the kernel itself cannot carry service traffic, only BPF can.

    Checksums are set up so that every receiving kernel verifies them:

    - forward: TX checksum offload is off at the client, so XDP sees full
      checksums (an incremental update of a partial one is garbage) and the
      backend's kernel verifies what XDP wrote;
    - return: offload is on at the backend, so its replies reach the lb's
      tc program *partial* (the L4 field holds only the pseudo-header sum,
      which the return path must update too), and off on the lb's eth0, so
      the kernel completes them in software on the way out and the client's
      kernel verifies the result. (Measured: with replies complete, or
      partial all the way to the client, a missing pseudo-header update
      goes unnoticed.)
    """
    return Topology(
        name="dnat",
        nodes={
            "client": {},
            # bpf_fib_lookup answers FWD_DISABLED unless forwarding is on
            # for the ingress device.
            "lb": {"net.ipv4.conf.eth0.forwarding": "1"},
            "backend": {},
        },
        links=(
            Link(
                Endpoint("client", "eth0", "10.0.1.2/24", "02:00:00:00:02:02", tx_checksum=False),
                Endpoint("lb", "eth0", "10.0.1.1/24", "02:00:00:00:02:01", tx_checksum=False),
            ),
            Link(
                Endpoint("lb", "eth1", "10.244.1.1/24", "02:00:00:00:03:01"),
                # GRO on: a veth delivers frames that native XDP redirects
                # into its peer only with GRO (or an XDP program) on this end.
                Endpoint("backend", "eth0", f"{BACKEND_IP}/24", "02:00:00:00:03:05", gro=True),
            ),
        ),
        routes=(
            Route("client", "10.96.0.0/12", via="10.0.1.1"),
            Route("backend", "default", via="10.244.1.1"),
        ),
        neighbours=(
            Neighbour("client", "eth0", "10.0.1.1", "02:00:00:00:02:01"),
            Neighbour("lb", "eth0", "10.0.1.2", "02:00:00:00:02:02"),
            Neighbour("lb", "eth1", BACKEND_IP, "02:00:00:00:03:05"),
            Neighbour("backend", "eth0", "10.244.1.1", "02:00:00:00:03:01"),
        ),
    )


# The service lab's backends: one node and one lb interface each (veth has no
# bridge here), backend N at 10.244.N.5 behind the lb's ethN (10.244.N.1).
SERVICE_BACKENDS = 4


def backend_ip(n: int) -> str:
    return f"10.244.{n}.5"


def service() -> Topology:
    """client -- lb -- backend1..backend4: a Service over several backends.

    Like dnat (forwarding only on the lb's client side, checksums judged by
    every kernel the same way), with four backends on their own links; tests
    start with three and add the fourth."""
    links = [Link(Endpoint("client", "eth0", "10.0.1.2/24", "02:00:00:00:02:02", tx_checksum=False),
                  Endpoint("lb", "eth0", "10.0.1.1/24", "02:00:00:00:02:01", tx_checksum=False))]
    routes = [Route("client", "10.96.0.0/12", via="10.0.1.1")]
    neighbours = [Neighbour("client", "eth0", "10.0.1.1", "02:00:00:00:02:01"),
                  Neighbour("lb", "eth0", "10.0.1.2", "02:00:00:00:02:02")]
    for n in range(1, SERVICE_BACKENDS + 1):
        node, lb_mac, be_mac = f"backend{n}", f"02:00:00:00:1{n}:01", f"02:00:00:00:1{n}:05"
        links.append(Link(Endpoint("lb", f"eth{n}", f"10.244.{n}.1/24", lb_mac),
                          Endpoint(node, "eth0", f"{backend_ip(n)}/24", be_mac, gro=True)))
        routes.append(Route(node, "default", via=f"10.244.{n}.1"))
        neighbours += [Neighbour("lb", f"eth{n}", backend_ip(n), be_mac), Neighbour(node, "eth0", f"10.244.{n}.1", lb_mac)]
    return Topology(
        name="service",
        nodes={"client": {}, "lb": {"net.ipv4.conf.eth0.forwarding": "1"},
               **{f"backend{n}": {} for n in range(1, SERVICE_BACKENDS + 1)}},
        links=tuple(links), routes=tuple(routes), neighbours=tuple(neighbours))


EGRESS_SENDER_MAC, EGRESS_MIDDLE_MAC = "02:00:00:00:02:02", "02:00:00:00:02:01"


def egress() -> Topology:
    """sender -- middle -- sink: packets as a tc egress program gets them
    from local sockets, then judged twice (bpflab.tool.egress).

    The sender's eth0 keeps TX checksum offload on, so what it sends carries
    CHECKSUM_PARTIAL through its tc egress hook and across the veth (the L4
    field holds the pseudo-header sum; a capture at the middle says so). The
    middle forwards it out of eth1, whose offload is off, so its kernel
    completes the checksum in software, and the sink, which takes every
    address as its own (a local route for 0.0.0.0/0, AnyIP; accept_local
    so that no source is a martian), verifies it and counts errors. The
    sender's and middle's MACs are the ones `bpflab csum` puts in its frames.
    IPv6 likewise (the sender needs no IPv6 of its own: its frames come from
    a packet socket). Addresses are in 198.18.0.0/15 (RFC 2544) and
    2001:2::/48 (RFC 5180), which no program steers by."""
    sink_mac = "02:00:00:00:07:02"
    return Topology(
        name="egress",
        nodes={"sender": {},
               "middle": {"net.ipv4.conf.all.forwarding": "1", "net.ipv6.conf.all.forwarding": "1"},
               "sink": {"net.ipv4.conf.all.accept_local": "1", "net.ipv4.conf.eth0.accept_local": "1"}},
        links=(
            Link(Endpoint("sender", "eth0", "198.18.0.1/24", EGRESS_SENDER_MAC),
                 Endpoint("middle", "eth0", "198.18.0.2/24", EGRESS_MIDDLE_MAC, address6="2001:2:0:1::2/64")),
            Link(Endpoint("middle", "eth1", "198.19.0.1/24", "02:00:00:00:07:01", tx_checksum=False,
                          address6="2001:2:0:2::1/64"),
                 Endpoint("sink", "eth0", "198.19.0.2/24", sink_mac, address6="2001:2:0:2::2/64")),
        ),
        routes=(Route("sender", "default", via="198.18.0.2"), Route("middle", "default", via="198.19.0.2"),
                Route("middle", "default6", via="2001:2:0:2::2"),
                Route("sink", "default", dev="lo", type="local"), Route("sink", "default6", dev="lo", type="local")),
        neighbours=(Neighbour("sender", "eth0", "198.18.0.2", EGRESS_MIDDLE_MAC),
                    Neighbour("middle", "eth0", "198.18.0.1", EGRESS_SENDER_MAC),
                    Neighbour("middle", "eth1", "198.19.0.2", sink_mac),
                    Neighbour("middle", "eth1", "2001:2:0:2::2", sink_mac)),
    )


TOPOLOGIES: dict[str, Callable[[], Topology]] = {"pair": pair, "pair6": pair6, "dnat": dnat, "service": service,
                                                 "egress": egress}
