"""A snapshot of a namespace's links, addresses, routes and firewall, to
prove that a test run left the host's root namespace as it found it."""
from __future__ import annotations

import shutil
import subprocess

from pyroute2 import IPRoute

from .netns import entered


def _links(ipr: IPRoute) -> list[tuple]:
    out = []
    for link in ipr.get_links():
        xdp = link.get("IFLA_XDP")
        out.append((
            link["index"], link.get("ifname"), link.get("address"), link.get("mtu"), link["flags"],
            xdp.get("IFLA_XDP_PROG_ID") if xdp else None,
        ))
    return sorted(out, key=lambda t: t[0])


def _addrs(ipr: IPRoute) -> list[tuple]:
    return sorted((a["index"], a.get("address"), a["prefixlen"]) for a in ipr.get_addr())


def _routes(ipr: IPRoute) -> list[tuple]:
    return sorted(
        (r.get("table"), r.get("dst") or "default", r["dst_len"], r.get("gateway"), r.get("oif"), r["type"])
        for family in (2, 10)
        for r in ipr.route("dump", family=family)
    )


def _firewall() -> str:
    nft = shutil.which("nft")
    if nft is None:
        return "(nft not installed)"
    return subprocess.run([nft, "list", "ruleset"], capture_output=True, text=True).stdout


def take(netns: str | None = None) -> dict[str, object]:
    with entered(netns), IPRoute() as ipr:
        snap = {"links": _links(ipr), "addresses": _addrs(ipr), "routes": _routes(ipr)}
        snap["firewall"] = _firewall() if netns is None else None
    return snap


def differences(before: dict, after: dict) -> list[str]:
    """Human-readable lines naming what changed; empty if nothing did."""
    lines = []
    for key in before:
        if before[key] != after.get(key):
            old, new = before[key], after.get(key)
            if isinstance(old, list) and isinstance(new, list):
                gone = [x for x in old if x not in new]
                came = [x for x in new if x not in old]
                lines.append(f"{key}: removed {gone}, added {came}")
            else:
                lines.append(f"{key} changed")
    return lines
