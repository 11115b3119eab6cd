"""kube-proxy's two datapaths for the same services, the peers xdp_dnat is
weighed against at each service count:

- nftables mode (KEP-3866): one verdict map from VIP . protocol . port to
  the service's chain, which picks an endpoint with `numgen random` through a
  second verdict map; each endpoint a chain that DNATs. A lookup per packet
  whatever the service count.
- iptables mode: KUBE-SERVICES holds one rule per service, walked in order
  until one matches; the service's chain picks an endpoint with `statistic
  --mode random` rules, each endpoint a chain that DNATs. Loaded with
  iptables-restore (iptables-nft on Debian 12, what kube-proxy finds there).

Both are what kube-proxy writes for ClusterIP services, without what does
not change the per-packet walk (masquerade marks, firewall and
health-check chains). The measured service sits half-way down the service
list, where an iptables packet's walk averages. Rules go into the lab's lb
namespace only and are removed with it.
"""
from __future__ import annotations

from pyroute2 import NFCTSocket

from bpflab.host.netns import entered
from bpflab.loaders.services import Service

SHAPES = ("nft", "iptables")


def ordered(measured: Service, others: list[Service]) -> list[Service]:
    """The measured service half-way down the list."""
    half = len(others) // 2
    return [*others[:half], measured, *others[half:]]


def nft_ruleset(services: list[Service]) -> str:
    """kube-proxy's nftables shape for `services` (nft -f input)."""
    elements = ",\n            ".join(f"{s.vip} . {s.proto} . {s.port} : goto service-{i}"
                                      for i, s in enumerate(services))
    lines = ["table ip kube-proxy {",
             "    map service-ips {",
             "        type ipv4_addr . inet_proto . inet_service : verdict",
             f"        elements = {{ {elements} }}",
             "    }",
             "    chain nat-prerouting {",
             "        type nat hook prerouting priority dstnat; policy accept;",
             "        jump services",
             "    }",
             "    chain services {",
             "        ip daddr . meta l4proto . th dport vmap @service-ips",
             "    }"]
    for i, s in enumerate(services):
        picks = ", ".join(f"{k} : goto endpoint-{i}-{k}" for k in range(len(s.backends)))
        lines += [f"    chain service-{i} {{", f"        numgen random mod {len(s.backends)} vmap {{ {picks} }}", "    }"]
        for k, b in enumerate(s.backends):
            lines += [f"    chain endpoint-{i}-{k} {{", f"        meta l4proto {s.proto} dnat to {b.ip}:{b.port}", "    }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def iptables_restore(services: list[Service]) -> str:
    """kube-proxy's iptables shape for `services` (iptables-restore input)."""
    chains, rules = [":KUBE-SERVICES - [0:0]"], ["-A PREROUTING -j KUBE-SERVICES"]
    for i, s in enumerate(services):
        chains.append(f":KUBE-SVC-{i} - [0:0]")
        rules.append(f"-A KUBE-SERVICES -d {s.vip}/32 -p {s.proto} -m {s.proto} --dport {s.port} -j KUBE-SVC-{i}")
        n = len(s.backends)
        for k, b in enumerate(s.backends):
            chains.append(f":KUBE-SEP-{i}-{k} - [0:0]")
            # Each rule takes its share of what the rules before it left.
            pick = "" if k == n - 1 else f"-m statistic --mode random --probability {1 / (n - k):.11f} "
            rules.append(f"-A KUBE-SVC-{i} {pick}-j KUBE-SEP-{i}-{k}")
            rules.append(f"-A KUBE-SEP-{i}-{k} -p {s.proto} -m {s.proto} -j DNAT --to-destination {b.ip}:{b.port}")
    return "\n".join(["*nat", *chains, *rules, "COMMIT"]) + "\n"


def load(lab, shape: str, services: list[Service]) -> None:
    """The shape's rules for `services` into the lb's namespace (none before)."""
    if shape == "nft":
        lab.run("lb", ["nft", "-f", "-"], input=nft_ruleset(services), check=True, timeout=600)
    elif shape == "iptables":
        lab.run("lb", ["iptables-restore"], input=iptables_restore(services), check=True, timeout=600)
    else:
        raise ValueError(f"no peer shape {shape!r}: {', '.join(SHAPES)}")


def unload(lab) -> None:
    """Every rule (iptables-nft's included: they are nftables tables) and every
    connection the lb's conntrack holds."""
    lab.run("lb", ["nft", "flush", "ruleset"], check=True, timeout=120)
    forget_connections(lab)


def forget_connections(lab) -> None:
    """The lb namespace's conntrack table emptied: the next packet of any
    flow is a new connection again."""
    with entered(lab.netns("lb")):
        ct = NFCTSocket()
        try:
            ct.flush()
        finally:
            ct.close()
