"""Decoding for people: dotted quads and IP protocol names."""
from __future__ import annotations

import socket
import struct

# IANA protocol numbers a user of this lab meets; others print as "proto N".
# (Not /etc/protocols: a minimal Debian has no netbase.)
PROTOCOL_NAMES = {
    1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 17: "UDP", 41: "IPv6", 47: "GRE", 50: "ESP", 51: "AH",
    58: "ICMPv6", 89: "OSPF", 103: "PIM", 112: "VRRP", 132: "SCTP", 136: "UDPLite",
}


def protocol_name(number: int) -> str:
    return PROTOCOL_NAMES.get(number, f"proto {number}")


def ip_str(be32: int) -> str:
    """A __be32 read into a native integer, as a dotted quad."""
    return socket.inet_ntoa(struct.pack("=I", be32))


def ip_be32(dotted: str) -> int:
    """A dotted quad as the native integer whose bytes are its __be32."""
    return struct.unpack("=I", socket.inet_aton(dotted))[0]
