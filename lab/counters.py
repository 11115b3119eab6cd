"""A node's own kernel counters (/proc/net/snmp, /proc/net/netstat and
/proc/net/snmp6 of its namespace)."""
from __future__ import annotations

from pathlib import Path

from bpflab.host.netns import entered

# Every counter of a packet the kernel dropped for a bad checksum (TCP's
# counts both families; UDP and ICMP have their own for IPv6).
CHECKSUM_ERRORS = (("IpExt", "InCsumErrors"), ("Tcp", "InCsumErrors"), ("Udp", "InCsumErrors"),
                   ("UdpLite", "InCsumErrors"), ("Icmp", "InCsumErrors"), ("Udp6", "InCsumErrors"),
                   ("UdpLite6", "InCsumErrors"), ("Icmp6", "InCsumErrors"))
SNMP6_GROUPS = ("Udp6", "UdpLite6", "Icmp6", "Ip6")


def _tables(text: str) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        proto, names = header.split(":", 1)
        _, nums = values.split(":", 1)
        table[proto] = dict(zip(names.split(), (int(v) for v in nums.split()), strict=True))
    return table


def _read(netns: str) -> tuple[str, str]:
    """(/proc/net/snmp with /proc/net/netstat, /proc/net/snmp6) of `netns`."""
    with entered(netns):
        # thread-self: /proc/self/net would show the main thread's namespace.
        text = Path("/proc/thread-self/net/snmp").read_text() + Path("/proc/thread-self/net/netstat").read_text()
        snmp6 = Path("/proc/thread-self/net/snmp6")
        six = snmp6.read_text() if snmp6.exists() else ""  # not there while IPv6 is off
    return text, six


def _add_snmp6(table: dict[str, dict[str, int]], six: str, groups=SNMP6_GROUPS) -> None:
    for line in six.splitlines():  # "Udp6InCsumErrors   0": a group's name, then the counter's
        name, value = line.split()
        group = next((g for g in groups if name.startswith(g)), None)
        if group is not None:
            table.setdefault(group, {})[name.removeprefix(group)] = int(value)


def snmp(netns: str) -> dict[str, dict[str, int]]:
    """{"Tcp": {"InCsumErrors": 0, ...}, "Udp": {...}, "Ip": {...}, "IpExt": {...}, "Udp6": {...}, ...}"""
    text, six = _read(netns)
    table = _tables(text)
    _add_snmp6(table, six)
    return table


def checksum_errors(netns: str) -> dict[str, int]:
    """{"Tcp InCsumErrors": n, ...}: the node's drops for bad checksums
    (read for every frame the egress lab sends: only these are parsed)."""
    text, six = _read(netns)
    wanted = {proto for proto, _ in CHECKSUM_ERRORS}
    table: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        proto, names = header.split(":", 1)
        if proto in wanted:
            table[proto] = dict(zip(names.split(), map(int, values.split(":", 1)[1].split()), strict=True))
    _add_snmp6(table, "\n".join(line for line in six.splitlines() if "InCsumErrors" in line))
    return {f"{proto} {name}": table.get(proto, {}).get(name, 0) for proto, name in CHECKSUM_ERRORS}
