"""A node's own kernel counters (/proc/net/snmp of its namespace)."""
from __future__ import annotations

from pathlib import Path

from loaders.libbpf.netns import entered


def snmp(netns: str) -> dict[str, dict[str, int]]:
    """{"Tcp": {"InCsumErrors": 0, ...}, "Udp": {...}, "Ip": {...}, ...}"""
    with entered(netns):
        # thread-self: /proc/self/net would show the main thread's namespace.
        text = Path("/proc/thread-self/net/snmp").read_text()
    table: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        proto, names = header.split(":", 1)
        _, nums = values.split(":", 1)
        table[proto] = dict(zip(names.split(), (int(v) for v in nums.split()), strict=True))
    return table
