"""xdp_dnat's services: the specs people write and the ctypes mirrors of the
maps' keys and values (bpf/xdp_dnat.h). The table operations on the maps
are in loaders/service_table.py."""
from __future__ import annotations

import ctypes
import dataclasses
import ipaddress
import socket

from bpflab.host.commandline import UsageError
from bpflab.loaders.maglev import MAX_BACKENDS as MAGLEV_MAX_BACKENDS
from bpflab.loaders.maglev import MAX_SIZE as MAGLEV_MAX_SIZE
from bpflab.loaders.protocols import ip_be32

PROTOS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
PROTO_NAMES = {v: k for k, v in PROTOS.items()}
DEFAULT_SERVICE = "10.96.0.10:80/tcp=10.244.1.5:8080"
MAX_WEIGHT = 65535  # struct backend's __u16


class ServiceKey(ctypes.Structure):
    """Mirror of struct service_key (bpf/xdp_dnat.h)."""

    _fields_ = [("vip", ctypes.c_uint32), ("port", ctypes.c_uint16), ("proto", ctypes.c_uint8), ("pad", ctypes.c_uint8)]


class BackendSlot(ctypes.Structure):
    """Mirror of struct backend: one endpoint of one service."""

    _fields_ = [("ip", ctypes.c_uint32), ("port", ctypes.c_uint16), ("weight", ctypes.c_uint16),
                ("service", ServiceKey)]


TABLE_HEADER_BYTES = 8  # struct maglev_table's size and backends, before its entries
_table_types: dict[tuple[int, int], type[ctypes.Structure]] = {}


def table_type(entries: int = MAGLEV_MAX_SIZE, backends: int = MAGLEV_MAX_BACKENDS) -> type[ctypes.Structure]:
    """Mirror of struct maglev_table with room for `entries` entries and
    `backends` backend slots: as the object declares it by default, else as
    a loader cuts it (xdp_dnat.bpf.c's maglev_size and table_backends).
    ctypes aligns slot[] to 4 bytes after entry[], as C does
    (table_slots_offset in bpf/xdp_dnat.h)."""
    if (entries, backends) not in _table_types:
        _table_types[entries, backends] = type(f"MaglevTable{entries}x{backends}", (ctypes.Structure,), {
            "_fields_": [("size", ctypes.c_uint32), ("backends", ctypes.c_uint32),
                         ("entry", ctypes.c_uint16 * entries), ("slot", ctypes.c_uint32 * backends)]})
    return _table_types[entries, backends]


MaglevTable = table_type()  # as declared: checked against the object's BTF


def table_bytes(entries: int, backends: int) -> int:
    """The value size of a table with room for `entries` entries and
    `backends` backend slots: what a loader makes each service's inner map."""
    return ctypes.sizeof(table_type(entries, backends))


class BackendHop(ctypes.Structure):
    """Mirror of struct backend_hop: a backend slot's next hop."""

    _fields_ = [("ip", ctypes.c_uint32), ("ifindex", ctypes.c_uint32), ("mtu", ctypes.c_uint32),
                ("smac", ctypes.c_uint8 * 6), ("dmac", ctypes.c_uint8 * 6)]


class FlowKey(ctypes.Structure):
    """Mirror of struct flow_key: one direction of a connection."""

    _fields_ = [("saddr", ctypes.c_uint32), ("daddr", ctypes.c_uint32), ("sport", ctypes.c_uint16),
                ("dport", ctypes.c_uint16), ("proto", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3)]


class SpecError(UsageError):
    """A service spec a person wrote is wrong; the message says how."""


class RoomError(SpecError):
    """A change the instance's maps have no room for, refused before anything
    changed; the message names the limit and the flag that raises it.
    `limit`: "services", "backends" (slots over all services) or
    "service_backends" (backends of one service)."""

    def __init__(self, message: str, limit: str):
        super().__init__(message)
        self.limit = limit


@dataclasses.dataclass(frozen=True, order=True)
class Backend:
    """A backend of a service: where its traffic may go, and its weight."""

    ip: str
    port: int
    weight: int = 1  # 0: draining (keeps its flows, gets no new ones)

    @property
    def name(self) -> str:
        """What the Maglev permutation hashes: the same on every load balancer."""
        return f"{self.ip}:{self.port}"

    def __str__(self) -> str:
        return self.name if self.weight == 1 else f"{self.name}@{self.weight}"


@dataclasses.dataclass(frozen=True)
class Service:
    vip: str
    port: int
    proto: str  # "tcp" or "udp"
    backends: tuple[Backend, ...]

    @classmethod
    def to(cls, vip: str, port: int, proto: str, backend_ip: str, backend_port: int) -> Service:
        """A service with one backend (the original xdp_dnat's)."""
        return cls(vip, port, proto, (Backend(backend_ip, backend_port),))

    def key(self) -> ServiceKey:
        return service_key(self.vip, self.port, self.proto)

    @property
    def frontend(self) -> str:
        return f"{self.vip}:{self.port}/{self.proto}"

    @property
    def backend(self) -> Backend:
        """The only backend of a one-backend service."""
        if len(self.backends) != 1:
            raise ValueError(f"{self.frontend} has {len(self.backends)} backends, not one")
        return self.backends[0]

    @property
    def backend_ip(self) -> str:
        return self.backend.ip

    @property
    def backend_port(self) -> int:
        return self.backend.port

    def __str__(self) -> str:
        return f"{self.frontend}=" + ",".join(str(b) for b in self.backends)

    def as_json(self) -> dict:
        return {"vip": self.vip, "port": self.port, "proto": self.proto,
                "backends": [dataclasses.asdict(b) for b in self.backends]}


def service_key(vip: str, port: int, proto: str) -> ServiceKey:
    return ServiceKey(ip_be32(vip), socket.htons(port), PROTOS[proto])


def _address(text: str, what: str, spec: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise SpecError(f"invalid {what} address '{text}' in '{spec}' (want a dotted IPv4 address)") from None


def _port(text: str, what: str, spec: str) -> int:
    if not text.isdigit():
        raise SpecError(f"invalid {what} port '{text}' in '{spec}' (want 1-65535)")
    port = int(text)
    if not 1 <= port <= 65535:
        raise SpecError(f"{what} port {port} out of range in '{spec}' (want 1-65535)")
    return port


def parse_frontend(text: str, spec: str | None = None) -> tuple[str, int, str]:
    """VIP:PORT/PROTO -> (vip, port, proto)."""
    spec = spec or text
    addr_port, slash, proto = text.partition("/")
    if not slash:
        raise SpecError(f"missing protocol in '{spec}' (want VIP:PORT/tcp or VIP:PORT/udp)")
    if proto.lower() not in PROTOS:
        raise SpecError(f"unknown protocol '{proto}' in '{spec}' (want tcp or udp)")
    addr, colon, port = addr_port.rpartition(":")
    if not colon:
        raise SpecError(f"missing service port in '{spec}' (want VIP:PORT/PROTO)")
    return _address(addr, "service", spec), _port(port, "service", spec), proto.lower()


def parse_backend(text: str, spec: str | None = None) -> Backend:
    """BACKEND:PORT or BACKEND:PORT@WEIGHT."""
    spec = spec or text
    addr_port, at, weight_text = text.partition("@")
    addr, colon, port = addr_port.rpartition(":")
    if not colon:
        raise SpecError(f"missing backend port in '{spec}' (want BACKEND:PORT[@WEIGHT])")
    weight = 1
    if at:
        if not weight_text.isdigit() or not 1 <= int(weight_text) <= MAX_WEIGHT:
            raise SpecError(f"invalid weight '{weight_text}' in '{spec}' (want 1-{MAX_WEIGHT})")
        weight = int(weight_text)
    return Backend(_address(addr, "backend", spec), _port(port, "backend", spec), weight)


def parse_service(spec: str) -> Service:
    """VIP:PORT/PROTO=B1:P1[@W1],B2:P2[@W2],..., e.g.
    10.96.0.10:80/tcp=10.244.1.5:8080,10.244.2.5:8080@2."""
    front, eq, back = spec.partition("=")
    if not eq:
        raise SpecError(f"malformed service '{spec}' (want VIP:PORT/PROTO=BACKEND:PORT[,BACKEND:PORT...])")
    vip, port, proto = parse_frontend(front, spec)
    if not back:
        raise SpecError(f"no backend in '{spec}' (want BACKEND:PORT after '=')")
    backends = tuple(parse_backend(part, spec) for part in back.split(","))
    names = [b.name for b in backends]
    for name in names:
        if names.count(name) > 1:
            raise SpecError(f"backend {name} twice in '{spec}'")
    return Service(vip, port, proto, backends)
