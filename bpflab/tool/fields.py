"""Which header fields a program changed, from the frame it got to the frame
it returned, parsed by scapy: "IP.dst 10.96.0.10 -> 10.244.1.5"."""
from __future__ import annotations

import scapy.layers.inet  # noqa: F401 - binds IP, TCP, UDP, ICMP under Ether
from scapy.layers.l2 import Ether
from scapy.packet import NoPayload, Packet, Raw


def _layers(packet: Packet) -> list[Packet]:
    out = []
    while not isinstance(packet, NoPayload):
        out.append(packet)
        packet = packet.payload
    return out


def _show(layer: Packet, name: str) -> str:
    value = layer.getfieldval(name)
    if name in ("chksum", "cksum", "check") and isinstance(value, int):
        return f"0x{value:04x}"
    return repr(value) if isinstance(value, bytes) else str(value)


def changes(before: bytes, after: bytes) -> list[str]:
    """'LAYER.field old -> new' for each header field that differs; the
    payload as a whole; a different layer structure says so."""
    if before == after:
        return []
    old, new = _layers(Ether(before)), _layers(Ether(after))
    if [type(x) for x in old] != [type(x) for x in new]:
        def names(layers):
            return "/".join(layer.__class__.__name__ for layer in layers)

        return [f"layers {names(old)} -> {names(new)} ({len(before)} -> {len(after)} bytes)"]
    found = []
    for a, b in zip(old, new, strict=True):
        if isinstance(a, Raw):
            if a.load != b.load:
                found.append(f"payload ({len(a.load)} -> {len(b.load)} bytes) changed")
            continue
        for field in a.fields_desc:
            if field.name in ("options",) and a.getfieldval(field.name) != b.getfieldval(field.name):
                found.append(f"{a.__class__.__name__}.options changed")
            elif field.name != "options" and a.getfieldval(field.name) != b.getfieldval(field.name):
                found.append(f"{a.__class__.__name__}.{field.name} {_show(a, field.name)} -> {_show(b, field.name)}")
    return found or [f"bytes changed ({len(before)} -> {len(after)})"]
