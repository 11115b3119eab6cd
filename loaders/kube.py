"""Kubernetes Services and EndpointSlices as xdp_dnat's services, as
`kubectl get services,endpointslices -A -o json` (or -o yaml) prints them.

What a cluster says, and what becomes of it (kube-proxy's rules, IPv4):
- a Service's clusterIP and each TCP/UDP port of it make a service
  VIP:PORT/PROTO; headless Services (clusterIP None), SCTP ports and
  IPv6-only Services are skipped and reported;
- its backends are the addresses of the IPv4 EndpointSlices labelled
  kubernetes.io/service-name=NAME in its namespace, on the slice port whose
  name is the Service port's name (targetPort resolved by the cluster);
- an endpoint that is ready (or says nothing: the API's "nil means ready")
  takes new flows; one terminating but still serving keeps its existing
  flows and gets no new ones (weight 0, draining); any other is left out;
- a Service without a ready endpoint stays, with no backend to choose:
  new flows to it are dropped, as kube-proxy rejects them.

Everything is read and checked before anything changes: a malformed
object is one line naming it (kind, namespace/name, the field), and the
maps are not touched.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path

from bpflab.loaders.service_table import ServiceTable
from bpflab.loaders.services import Backend, RoomError, Service, SpecError


class KubeError(SpecError):
    """An object that is not what the Kubernetes API says it must be."""


@dataclasses.dataclass(frozen=True)
class Desired:
    services: list[tuple[Service, str]]  # (service, "namespace/name:port-name") per VIP:PORT/PROTO
    skipped: list[str]


def _documents(text: str, source: str) -> list:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise KubeError(f"{source}: not JSON: {exc}") from None
    import yaml  # only here: the loaders start without it

    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise KubeError(f"{source}: not YAML or JSON: {' '.join(str(exc).split())}") from None


def _objects(docs: list, source: str) -> list[dict]:
    out: list[dict] = []
    for doc in docs:
        if isinstance(doc, list):
            items = doc
        elif isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List"):  # kubectl get -o json/yaml
            items = doc.get("items")
        else:
            items = [doc]
        if not isinstance(items, list):
            raise KubeError(f"{source}: a List without items")
        for item in items:
            if not isinstance(item, dict):
                raise KubeError(f"{source}: an item that is not an object: {str(item)[:60]!r}")
            out.append(item)
    return out


def _name(obj: dict) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return f"{obj.get('kind', '?')} {meta.get('namespace', 'default')}/{meta.get('name', '?')}"


def _field(obj: dict, path: str, kind: type, what: str):
    """obj's value at dotted `path`, which must be a `kind`."""
    value = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise KubeError(f"{what}: {path} is {value!r}, not {'a list' if kind is list else kind.__name__}")
    return value


def _port(value, what: str, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise KubeError(f"{what}: {path} is {value!r}, not a port (1-65535)")
    return value


@dataclasses.dataclass
class _Slice:
    ports: dict[str, tuple[int, str]]  # port name -> (port, protocol)
    endpoints: list[tuple[str, int]]  # (address, weight: 1 ready, 0 draining)


def _service_ports(obj: dict, what: str) -> tuple[str | None, list[tuple[str, int, str]], str | None]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise KubeError(f"{what}: spec is {spec!r}, not an object")
    cluster_ip = spec.get("clusterIP")
    ips = spec.get("clusterIPs") or ([cluster_ip] if cluster_ip else [])
    if cluster_ip in (None, "", "None") and not ips:
        return None, [], f"{what}: headless or without a cluster IP"
    v4 = []
    for ip in ips:
        if ip == "None":
            return None, [], f"{what}: headless (clusterIP None)"
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise KubeError(f"{what}: spec.clusterIP {ip!r} is not an IP address") from None
        if addr.version == 4:
            v4.append(str(addr))
    if not v4:
        return None, [], f"{what}: IPv6 only ({', '.join(ips)})"
    ports = []
    for i, p in enumerate(_field(obj, "spec.ports", list, what)):
        if not isinstance(p, dict):
            raise KubeError(f"{what}: spec.ports[{i}] is not an object")
        ports.append((p.get("name") or "", _port(p.get("port"), what, f"spec.ports[{i}].port"),
                      str(p.get("protocol") or "TCP")))
    return v4[0], ports, None


def _slice(obj: dict, what: str) -> tuple[str, str, _Slice | None]:
    labels = obj.get("metadata", {}).get("labels") or {}
    service = labels.get("kubernetes.io/service-name")
    namespace = obj.get("metadata", {}).get("namespace", "default")
    if not isinstance(service, str) or not service:
        raise KubeError(f"{what}: no metadata.labels[kubernetes.io/service-name]")
    address_type = obj.get("addressType")
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        raise KubeError(f"{what}: addressType is {address_type!r}, not IPv4, IPv6 or FQDN")
    if address_type != "IPv4":
        return namespace, service, None
    ports = {}
    for i, p in enumerate(obj.get("ports") or []):
        if not isinstance(p, dict):
            raise KubeError(f"{what}: ports[{i}] is not an object")
        ports[p.get("name") or ""] = (_port(p.get("port"), what, f"ports[{i}].port"), str(p.get("protocol") or "TCP"))
    endpoints = []
    for i, ep in enumerate(obj.get("endpoints") or []):
        if not isinstance(ep, dict):
            raise KubeError(f"{what}: endpoints[{i}] is not an object")
        cond = ep.get("conditions") or {}
        ready, serving, terminating = cond.get("ready"), cond.get("serving"), cond.get("terminating")
        weight = 1 if ready is None or ready is True else 0 if (serving and terminating) else None
        for j, addr in enumerate(_field(ep, "addresses", list, f"{what}: endpoints[{i}]")):
            try:
                ip = str(ipaddress.IPv4Address(addr))
            except ValueError:
                raise KubeError(f"{what}: endpoints[{i}].addresses[{j}] {addr!r} is not an IPv4 address") from None
            if weight is not None:
                endpoints.append((ip, weight))
    return namespace, service, _Slice(ports, endpoints)


def parse(text: str, source: str = "input") -> Desired:
    """The services `text` (JSON or YAML, a List or objects) describes."""
    services_in: list[tuple[str, dict]] = []
    slices: dict[tuple[str, str], list[_Slice]] = {}
    skipped: list[str] = []
    for obj in _objects(_documents(text, source), source):
        kind, what = obj.get("kind"), _name(obj)
        if kind == "Service":
            services_in.append((what, obj))
        elif kind == "EndpointSlice":
            namespace, service, sl = _slice(obj, what)
            if sl is None:
                skipped.append(f"{what}: addressType {obj.get('addressType')}")
            else:
                slices.setdefault((namespace, service), []).append(sl)
        elif kind in (None, ""):
            raise KubeError(f"{source}: an object without kind")
        else:
            skipped.append(f"{what}: not a Service or EndpointSlice")
    desired: dict[tuple[str, int, str], tuple[Service, str]] = {}
    for what, obj in services_in:
        vip, ports, why = _service_ports(obj, what)
        if vip is None:
            skipped.append(why)
            continue
        namespace = obj.get("metadata", {}).get("namespace", "default")
        name = obj.get("metadata", {}).get("name", "?")
        for port_name, port, protocol in ports:
            if protocol not in ("TCP", "UDP"):
                skipped.append(f"{what}: port {port}/{protocol} (xdp_dnat balances TCP and UDP)")
                continue
            weights: dict[tuple[str, int], int] = {}
            for sl in slices.get((namespace, name), []):
                target = sl.ports.get(port_name)
                if target is None or target[1] != protocol:
                    continue
                for ip, weight in sl.endpoints:
                    key = (ip, target[0])
                    weights[key] = max(weights.get(key, 0), weight)  # listed twice: ready wins
            backends = tuple(Backend(ip, bport, w) for (ip, bport), w in sorted(weights.items()))
            svc = Service(vip, port, protocol.lower(), backends)
            key = (vip, port, svc.proto)
            if key in desired:
                raise KubeError(f"{what}: {svc.frontend} is also {desired[key][1]}")
            desired[key] = (svc, f"{namespace}/{name}" + (f":{port_name}" if port_name else ""))
    return Desired(sorted(desired.values(), key=lambda d: (ipaddress.IPv4Address(d[0].vip), d[0].port, d[0].proto)),
                   skipped)


def load_services(path: str) -> Desired:
    """-f FILE (or - for stdin), read and checked whole."""
    import sys

    if path == "-":
        return parse(sys.stdin.read(), "stdin")
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise KubeError(f"{path}: no such file") from None
    return parse(text, path)


@dataclasses.dataclass
class ApplyReport:
    added: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    changed: list[str] = dataclasses.field(default_factory=list)
    unchanged: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        lines = [f"added   {a}" for a in self.added] + [f"removed {r}" for r in self.removed] + \
                [f"changed {c}" for c in self.changed] + [f"skipped {s}" for s in self.skipped]
        lines.append(f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed, "
                     f"{self.unchanged} unchanged")
        return "\n".join(lines)

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


def _backends(service: Service) -> str:
    return ", ".join(f"{b}{' draining' if b.weight == 0 else ''}" for b in service.backends) or "no ready backend"


def _diff(old: Service, new: Service) -> str:
    before = {b.name: b.weight for b in old.backends}
    after = {b.name: b.weight for b in new.backends}
    parts = [f"+{n}" for n in after if n not in before] + [f"-{n}" for n in before if n not in after] + \
            [f"{n} weight {before[n]}->{after[n]}" for n in after if n in before and before[n] != after[n]]
    return " ".join(parts)


def apply(table: ServiceTable, desired: Desired) -> ApplyReport:
    """Make the instance's services exactly `desired`: every change a whole
    table swap, removed backends' flows ended, the others' kept."""
    report = ApplyReport(skipped=list(desired.skipped))
    current = {(s.vip, s.port, s.proto): s for s in table.services()}
    wanted = {(s.vip, s.port, s.proto): (s, origin) for s, origin in desired.services}
    _check_capacity(table, [s for s, _ in desired.services], current)
    table.check_table_room([s for s, _ in desired.services])
    removed = [key for key in current if key not in wanted]
    table.delete_many(removed)
    report.removed = [current[key].frontend for key in removed]
    changes = []
    for key, (s, origin) in wanted.items():
        old = current.get(key)
        if old is None:
            changes.append(s)
            report.added.append(f"{s.frontend} ({origin}) -> {_backends(s)}")
        elif sorted(old.backends) != sorted(s.backends):
            changes.append(s)
            report.changed.append(f"{s.frontend} ({origin}): {_diff(old, s)}")
        else:
            report.unchanged += 1
    try:
        table.put_many(changes)  # one swap for all: the kernel waits once
    except RoomError as exc:
        if exc.limit != "backends":
            raise
        # No room for every changed service's old and new slots at once
        # (nothing changed yet): one service at a time frees as it goes.
        for s in changes:
            table.put(s)
    return report


def _check_capacity(table: ServiceTable, services: list[Service], current: dict) -> None:
    """Refuse before changing anything what the maps cannot hold."""
    if len(services) > table.maps.services.max_entries:
        raise KubeError(f"{len(services)} services do not fit the service map ({table.maps.services.max_entries}; "
                        "see --max-services)")
    slots = sum(len(s.backends) for s in services)
    # During the change a service's old and new backends may both hold slots.
    if slots > table.maps.backends.max_entries:
        raise KubeError(f"{slots} backends do not fit the backend slots ({table.maps.backends.max_entries}; "
                        "see --max-backends)")
