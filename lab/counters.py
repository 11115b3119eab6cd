"""A node's own kernel counters (/proc/net/snmp and /proc/net/netstat of
its namespace)."""
from __future__ import annotations

from pathlib import Path

from bpflab.host.netns import entered

# Every counter of a packet the kernel dropped for a bad checksum.
CHECKSUM_ERRORS = (("IpExt", "InCsumErrors"), ("Tcp", "InCsumErrors"), ("Udp", "InCsumErrors"),
                   ("UdpLite", "InCsumErrors"), ("Icmp", "InCsumErrors"))


def _tables(text: str) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        proto, names = header.split(":", 1)
        _, nums = values.split(":", 1)
        table[proto] = dict(zip(names.split(), (int(v) for v in nums.split()), strict=True))
    return table


def snmp(netns: str) -> dict[str, dict[str, int]]:
    """{"Tcp": {"InCsumErrors": 0, ...}, "Udp": {...}, "Ip": {...}, "IpExt": {...}, ...}"""
    with entered(netns):
        # thread-self: /proc/self/net would show the main thread's namespace.
        text = Path("/proc/thread-self/net/snmp").read_text() + Path("/proc/thread-self/net/netstat").read_text()
    return _tables(text)


def checksum_errors(netns: str) -> dict[str, int]:
    """{"Tcp InCsumErrors": n, ...}: the node's drops for bad checksums."""
    table = snmp(netns)
    return {f"{proto} {name}": table.get(proto, {}).get(name, 0) for proto, name in CHECKSUM_ERRORS}
