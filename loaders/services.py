"""xdp_dnat's services: the spec people write, the ctypes mirrors of the
map's key and value, and the table operations on a (pinned) map."""
from __future__ import annotations

import ctypes
import dataclasses
import errno
import ipaddress
import socket

from bpflab.libbpf import BpfError, Map
from bpflab.loaders.protocols import ip_be32, ip_str

PROTOS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
PROTO_NAMES = {v: k for k, v in PROTOS.items()}
DEFAULT_SERVICE = "10.96.0.10:80/tcp=10.244.1.5:8080"


class ServiceKey(ctypes.Structure):
    """Mirror of struct service_key (bpf/xdp_dnat.h)."""

    _fields_ = [("vip", ctypes.c_uint32), ("port", ctypes.c_uint16), ("proto", ctypes.c_uint8), ("pad", ctypes.c_uint8)]


class Backend(ctypes.Structure):
    """Mirror of struct backend."""

    _fields_ = [("ip", ctypes.c_uint32), ("port", ctypes.c_uint16), ("pad", ctypes.c_uint8 * 2)]


class SpecError(ValueError):
    """A service spec a person wrote is wrong; the message says how."""


@dataclasses.dataclass(frozen=True)
class Service:
    vip: str
    port: int
    proto: str  # "tcp" or "udp"
    backend_ip: str
    backend_port: int

    def key(self) -> ServiceKey:
        return ServiceKey(ip_be32(self.vip), socket.htons(self.port), PROTOS[self.proto])

    def backend(self) -> Backend:
        return Backend(ip_be32(self.backend_ip), socket.htons(self.backend_port))

    def reverse_key(self) -> ServiceKey:
        """The reverse map's key: replies come from {backend, port, proto}."""
        return ServiceKey(ip_be32(self.backend_ip), socket.htons(self.backend_port), PROTOS[self.proto])

    @property
    def frontend(self) -> str:
        return f"{self.vip}:{self.port}/{self.proto}"

    def __str__(self) -> str:
        return f"{self.frontend}={self.backend_ip}:{self.backend_port}"

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


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


def parse_service(spec: str) -> Service:
    """VIP:PORT/PROTO=BACKEND:PORT, e.g. 10.96.0.10:80/tcp=10.244.1.5:8080."""
    front, eq, back = spec.partition("=")
    if not eq:
        raise SpecError(f"malformed service '{spec}' (want VIP:PORT/PROTO=BACKEND:PORT)")
    vip, port, proto = parse_frontend(front, spec)
    addr, colon, bport = back.rpartition(":")
    if not colon:
        raise SpecError(f"missing backend port in '{spec}' (want BACKEND:PORT after '=')")
    return Service(vip, port, proto, _address(addr, "backend", spec), _port(bport, "backend", spec))


class ServiceTable:
    """The services of one xdp_dnat instance. Every change goes through here
    so that the reverse map of the return path stays in step: it maps
    {backend, port, proto} back to the service, so a backend serves one
    service at a time."""

    def __init__(self, services: Map, reverse: Map | None = None):
        self.services = services.bind(ServiceKey, Backend)
        self.reverse = reverse.bind(ServiceKey, ServiceKey) if reverse is not None else None

    def _service_of_backend(self, service: Service) -> str | None:
        if self.reverse is None:
            return None
        front = self.reverse.lookup(service.reverse_key())
        if front is None or bytes(front) == bytes(service.key()):
            return None
        return f"{ip_str(front.vip)}:{socket.ntohs(front.port)}/{service.proto}"

    def add(self, service: Service) -> None:
        taken = self._service_of_backend(service)
        if taken:
            raise SpecError(f"backend {service.backend_ip}:{service.backend_port}/{service.proto} already serves {taken}")
        key = service.key()
        old = self.lookup(service.vip, service.port, service.proto)
        try:
            self.services.update(key, service.backend())
        except BpfError as exc:
            if exc.errno == errno.E2BIG:
                raise BpfError(errno.E2BIG, f"service map is full ({self.services.max_entries} services)") from None
            raise
        if self.reverse is not None:
            if old is not None and bytes(old.reverse_key()) != bytes(service.reverse_key()):
                self.reverse.delete(old.reverse_key())
            self.reverse.update(service.reverse_key(), key)

    def lookup(self, vip: str, port: int, proto: str) -> Service | None:
        b = self.services.lookup(ServiceKey(ip_be32(vip), socket.htons(port), PROTOS[proto]))
        return None if b is None else Service(vip, port, proto, ip_str(b.ip), socket.ntohs(b.port))

    def delete(self, vip: str, port: int, proto: str) -> bool:
        old = self.lookup(vip, port, proto)
        if old is None:
            return False
        self.services.delete(old.key())
        if self.reverse is not None:
            self.reverse.delete(old.reverse_key())
        return True

    def list(self) -> list[Service]:
        rows = [
            Service(ip_str(k.vip), socket.ntohs(k.port), PROTO_NAMES.get(k.proto, str(k.proto)), ip_str(b.ip),
                    socket.ntohs(b.port))
            for k, b in self.services.items()
        ]
        return sorted(rows, key=lambda s: (socket.inet_aton(s.vip), s.port, s.proto))
