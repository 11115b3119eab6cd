"""The services of one xdp_dnat instance, as its maps hold them.

Every change goes through ServiceTable so that the maps stay consistent
for a packet arriving at any moment:
- a service's backends are written to their slots before a table that
  names them is published;
- a new table is built in a new inner map and swapped in with one update
  of the services map-in-map: a packet sees the whole old table or the
  whole new one;
- a removed backend's slot is freed after the new table is in place; the
  flows pinned to it then find the slot dead and ask the table again (their
  next packet goes to another backend, which resets a TCP connection), and
  their connection entries are deleted here.
Established flows of the other backends keep their backend: they are pinned
in dnat_flows, which no table change touches.
"""
from __future__ import annotations

import array
import ctypes
import dataclasses
import errno
import itertools
import socket
from pathlib import Path

from bpflab.libbpf import BPF_MAP_TYPE_ARRAY, BatchError, BpfError, BpfObject, Map
from bpflab.loaders import maglev
from bpflab.loaders.protocols import ip_be32, ip_str
from bpflab.loaders.services import (
    PROTO_NAMES,
    Backend,
    BackendSlot,
    FlowKey,
    RoomError,
    Service,
    ServiceKey,
    SpecError,
    service_key,
    table_type,
)


class DnatConfig(ctypes.Structure):
    """Mirror of struct dnat_config (bpf/xdp_dnat.h)."""

    _fields_ = [("service_ifindex", ctypes.c_uint32), ("maglev_size", ctypes.c_uint32),
                ("table_btf_key_id", ctypes.c_uint32), ("table_btf_value_id", ctypes.c_uint32),
                ("table_backends", ctypes.c_uint32)]


def instance_config(services: Map, service_ifindex: int, maglev_size: int, table_backends: int) -> DnatConfig:
    """What a loader writes to dnat_config (`services` of its loaded object)."""
    inner = services.inner
    return DnatConfig(service_ifindex, maglev_size, inner.btf_key_type_id if inner else 0,
                      inner.btf_value_type_id if inner else 0, table_backends)


# The maps a running instance pins, for `service`, `backend` and `stats`.
MAP_NAMES = ("services", "backends", "backend_packets", "dnat_flows", "dnat_replies", "dnat_config")


@dataclasses.dataclass
class DnatMaps:
    services: Map
    backends: Map
    backend_packets: Map
    flows: Map
    replies: Map
    config: Map

    def __post_init__(self):
        self.services.bind(ServiceKey, ctypes.c_uint32)  # value: an inner map's fd in, its id out
        self.backends.bind(ctypes.c_uint32, BackendSlot)
        self.backend_packets.bind(ctypes.c_uint32, ctypes.c_uint64)
        self.flows.bind(FlowKey, ctypes.c_uint32)
        self.replies.bind(FlowKey, ServiceKey)
        self.config.bind(ctypes.c_uint32, DnatConfig)

    @classmethod
    def of(cls, obj: BpfObject) -> DnatMaps:
        return cls(*(obj.map(name) for name in MAP_NAMES))

    @classmethod
    def pinned(cls, pin_dir: Path) -> DnatMaps:
        opened = []
        try:
            for name in MAP_NAMES:
                opened.append(Map.from_pin(pin_dir / name))
        except BaseException:
            for m in opened:
                m.close()
            raise
        return cls(*opened)

    def close(self) -> None:
        for m in (self.services, self.backends, self.backend_packets, self.flows, self.replies, self.config):
            m.close()


@dataclasses.dataclass(frozen=True)
class BackendState:
    slot: int
    backend: Backend
    packets: int

    def as_json(self) -> dict:
        return {"ip": self.backend.ip, "port": self.backend.port, "weight": self.backend.weight,
                "slot": self.slot, "packets": self.packets}


@dataclasses.dataclass(frozen=True)
class ServiceState:
    service: Service
    backends: tuple[BackendState, ...]
    table_size: int  # 0: no backend to choose (traffic is dropped)

    def as_json(self) -> dict:
        s = self.service
        return {"vip": s.vip, "port": s.port, "proto": s.proto, "table_size": self.table_size,
                "backends": [b.as_json() for b in self.backends]}


def _key_tuple(key: ServiceKey) -> tuple[str, int, str]:
    return ip_str(key.vip), socket.ntohs(key.port), PROTO_NAMES.get(key.proto, str(key.proto))


@dataclasses.dataclass
class _Change:
    """One service's part of a change: its key, the slots it took that were
    free before, the slots it leaves, and its new table (an inner map)."""
    key: ServiceKey
    fresh: list[int]
    table: Map | None
    gone: list[int] = dataclasses.field(default_factory=list)


class SlotView:
    """The backends map as one read returned it (slot i's bytes at i * 16;
    a free slot is all zero, as the loader frees it), searched without a
    Python object per slot: a hundred thousand slots are read for every
    change of one service."""

    SIZE = ctypes.sizeof(BackendSlot)
    SERVICE_AT = BackendSlot.service.offset
    FREE = bytes(SIZE)

    def __init__(self, raw: bytes):
        self.raw = raw
        # Each slot's first word is its IP. A strided view, not numpy: every
        # CLI call reads this, and numpy costs 0.2 s to import.
        self.ips = memoryview(raw).cast("I")[:: self.SIZE // 4]
        self._found: dict[bytes, dict[int, BackendSlot]] = {}
        self._index: dict[bytes, dict[int, BackendSlot]] | None = None

    def __len__(self) -> int:
        """How many slots are used."""
        return len(self.ips) - sum(1 for _ in self.free())

    def free(self):
        """The free slots, lowest first, each found by a search in C (a
        run of zeros that straddles two used slots is skipped)."""
        at = self.raw.find(self.FREE)
        while at != -1:
            i, rest = divmod(at, self.SIZE)
            if rest == 0:
                yield i
            at = self.raw.find(self.FREE, (i + 1) * self.SIZE)

    def __getitem__(self, i: int) -> BackendSlot:
        return BackendSlot.from_buffer_copy(self.raw, i * self.SIZE)

    def items(self):
        return ((i, self[i]) for i, ip in enumerate(self.ips) if ip)

    def values(self):
        return (slot for _, slot in self.items())

    def by_service(self) -> dict[bytes, dict[int, BackendSlot]]:
        """Every used slot, grouped by its service's key bytes (one pass)."""
        out: dict[bytes, dict[int, BackendSlot]] = {}
        for i, slot in self.items():
            out.setdefault(bytes(slot.service), {})[i] = slot
        return out

    def of(self, key: ServiceKey) -> dict[int, BackendSlot]:
        """The used slots of the service `key`: its bytes found where a
        slot's service field is (a search in C, not a loop over slots); past
        a few services, from an index of them all built once."""
        wanted, out = bytes(key), {}
        if self._index is None and len(self._found) >= 8:
            self._index = self.by_service()
        if self._index is not None:
            return dict(self._index.get(wanted, {}))
        if wanted in self._found:  # one change asks for the same service more than once
            return dict(self._found[wanted])
        at = self.raw.find(wanted)
        while at != -1:
            i, rest = divmod(at - self.SERVICE_AT, self.SIZE)
            if rest == 0 and self.ips[i]:
                out[i] = self[i]
            at = self.raw.find(wanted, at + 1)
        self._found[wanted] = out
        return dict(out)


# Services whose new tables go in with one update of the services map: each
# holds an inner map's fd until then, and a process may have only 1024 open.
SWAP_CHUNK = 256


class ServiceTable:
    def __init__(self, maps: DnatMaps, maglev_size: int | None = None, table_backends: int | None = None):
        """`maglev_size` and `table_backends` (the most backends a service may
        have) as the instance's loader set them; None: as it recorded them
        in dnat_config (a running instance's pins)."""
        self.maps = maps
        config = maps.config.lookup(0) if maglev_size is None or table_backends is None else None
        if maglev_size is None:
            maglev_size = config.maglev_size if config is not None and config.maglev_size else maglev.DEFAULT_SIZE
        self.maglev_size = maglev.check_size(maglev_size)
        # Each table's inner map: the object's declared template (room for
        # the largest table) when it kept it, else (its loader set a
        # template of its own, or a running instance's pins) cut to size.
        if maps.services.inner is not None:
            self.table_type, backends_room = table_type(), maglev.MAX_BACKENDS
        else:
            backends_room = table_backends or (config.table_backends if config is not None else 0)
            if not backends_room:
                raise ValueError("the room of the tables' backends is unknown: pass table_backends")
            self.table_type = table_type(self.maglev_size, backends_room)
        self.table_backends = min(table_backends or backends_room, backends_room)

    # -- reading -----------------------------------------------------------
    def _slots(self) -> SlotView:
        return SlotView(self.maps.backends.array_values_raw())

    def table(self, vip: str, port: int, proto: str) -> tuple[int, list[int]] | None:
        """(size, backend slot of every entry) of a service's current table."""
        key = service_key(vip, port, proto)
        # The services map gives the table's map id; another process may
        # swap a new table in and the old one be freed before we open it
        # by id (seen: a running loader died of it): then read the id again.
        for _ in range(100):
            inner_id = self.maps.services.lookup(key)
            if inner_id is None:
                return None
            try:
                inner = Map.from_id(inner_id)
            except BpfError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                continue
            with inner:
                t = inner.bind(ctypes.c_uint32, self.table_type).lookup(0)
            return t.size, [t.slot[i] for i in t.entry[:t.size]]
        raise BpfError(errno.EAGAIN, f"the table of {vip}:{port}/{proto} kept changing while it was read")

    def backend_slots(self) -> dict[int, str]:
        """Every used backend slot and its backend's address (no table is read)."""
        slots = self._slots()
        return {i: ip_str(ip) for i, ip in enumerate(slots.ips) if ip}

    def backend_ips(self) -> set[str]:
        """The addresses of every backend of every service (slots only: no
        table is read)."""
        return {ip_str(s.ip) for s in self._slots().values()}

    def states(self) -> list[ServiceState]:
        grouped = self._slots().by_service()
        packets = self.maps.backend_packets.counter_sums()
        rows = []
        for key in self.maps.services.keys():
            vip, port, proto = _key_tuple(key)
            table = self.table(vip, port, proto)
            if table is None:  # deleted while we looked
                continue
            own = sorted(grouped.get(bytes(key), {}).items(),
                         key=lambda item: (socket.ntohl(item[1].ip), socket.ntohs(item[1].port)))
            backends = tuple(
                BackendState(i, Backend(ip_str(s.ip), socket.ntohs(s.port), s.weight),
                             packets[i])
                for i, s in own)
            rows.append(ServiceState(Service(vip, port, proto, tuple(b.backend for b in backends)), backends,
                                     table[0]))
        return sorted(rows, key=lambda r: (socket.inet_aton(r.service.vip), r.service.port, r.service.proto))

    def services(self) -> list[Service]:
        return [r.service for r in self.states()]

    def lookup(self, vip: str, port: int, proto: str, slots: SlotView | None = None) -> Service | None:
        """The service as its slots say (no table is read), or None."""
        key = service_key(vip, port, proto)
        if self.maps.services.lookup(key) is None:
            return None
        slots = self._slots() if slots is None else slots
        own = sorted(slots.of(key).values(), key=lambda s: (socket.ntohl(s.ip), socket.ntohs(s.port)))
        return Service(*_key_tuple(key), tuple(Backend(ip_str(s.ip), socket.ntohs(s.port), s.weight) for s in own))

    # -- changing ------------------------------------------------------------
    def put(self, service: Service) -> None:
        """Make `service` exist with exactly these backends and weights (none:
        the service exists without a backend to choose, and drops new flows)."""
        self.put_many([service])

    def put_many(self, services: list[Service], slots: SlotView | None = None) -> None:
        """put() for several services, their new tables swapped in by one
        update of the services map per SWAP_CHUNK services: the kernel waits
        for running programs after each update call of a map of maps (about
        6 ms here), so a thousand services cost a few waits, not six
        seconds. What the maps have no room for is refused before anything
        changes (RoomError); services whose tables still did not go in
        (another process filled the map meanwhile) give their new slots back.
        `slots`: the backends map as this change's caller just read it."""
        seen: set[bytes] = set()
        for service in services:
            if bytes(service.key()) in seen:
                raise SpecError(f"{service.frontend} given twice")
            seen.add(bytes(service.key()))
        slots = self._slots() if slots is None else slots
        self._check_room(services, slots)
        free = slots.free()
        for start in range(0, len(services), SWAP_CHUNK):
            try:
                self._put_chunk(services[start:start + SWAP_CHUNK], slots, free)
            except BatchError as exc:
                exc.done += start
                raise

    def _put_chunk(self, services: list[Service], slots: SlotView, free) -> None:
        changes: list[_Change] = []
        try:
            for service in services:
                changes.append(self._place(service, slots, free))
            self._zero_counters([i for change in changes for i in change.fresh])
            self._swap_in(changes)
        except BaseException as exc:
            done = exc.done if isinstance(exc, BatchError) else 0  # the swapped-in part stands
            self._clear_slots([i for change in changes[done:] for i in change.fresh])  # no table names them
            self._free([i for change in changes[:done] for i in change.gone], slots)
            raise
        finally:
            for change in changes:
                change.table.close()
        self._free([i for change in changes for i in change.gone], slots)

    def check_table_room(self, services: list[Service]) -> None:
        """RoomError for the first service with more ready backends than a
        table has room for."""
        for service in services:
            ready = sum(1 for b in service.backends if b.weight > 0)
            if ready > self.table_backends:
                raise RoomError(f"{service.frontend} has {ready} backends: each table has room for "
                                f"{self.table_backends} (--max-service-backends)", "service_backends")

    def _check_room(self, services: list[Service], slots: SlotView) -> None:
        """Refuse what the maps cannot hold, before changing anything: a
        service with more ready backends than a table has room for, more
        services than the services map takes, more new backend slots than
        are free."""
        self.check_table_room(services)
        services_map = self.maps.services
        new = sum(1 for s in services if services_map.lookup(s.key()) is None)
        if new:
            present = sum(1 for _ in services_map.keys())
            if present + new > services_map.max_entries:
                raise RoomError(f"{present + new} services do not fit the service map ({services_map.max_entries}; "
                                f"--max-services)", "services")
        fresh = 0
        for s in services:
            owned = {(slot.ip, slot.port) for slot in slots.of(s.key()).values()}
            fresh += sum(1 for b in s.backends if (ip_be32(b.ip), socket.htons(b.port)) not in owned)
        if fresh and len(list(itertools.islice(slots.free(), fresh))) < fresh:
            room = self.maps.backends.max_entries - len(slots)
            raise RoomError(f"{fresh} new backend{'s' if fresh > 1 else ''} do{'' if fresh > 1 else 'es'} not fit the "
                            f"free backend slots ({room} of {self.maps.backends.max_entries}; --max-backends)",
                            "backends")

    def _place(self, service: Service, slots: SlotView, free) -> _Change:
        """Write the slots of `service`'s backends (their own if they have
        one, else free ones) and build its table; nothing names them yet."""
        key = service.key()
        own = {(s.ip, s.port): i for i, s in slots.of(key).items()}
        change = _Change(key, [], None)
        try:
            placed, written = [], []
            for ep in service.backends:
                i = own.pop((ip_be32(ep.ip), socket.htons(ep.port)), None)
                if i is None:
                    i = next(free, None)
                    if i is None:  # taken by another process since _check_room
                        raise BpfError(errno.E2BIG, f"no free backend slot for {service.frontend} "
                                                    f"({self.maps.backends.max_entries} in use; --max-backends)")
                    change.fresh.append(i)
                written.append((i, BackendSlot(ip_be32(ep.ip), socket.htons(ep.port), ep.weight, key)))
                placed.append(i)
            self.maps.backends.update_many(written)
            change.gone = list(own.values())
            change.table = self._table_map(service, placed)
        except BaseException:
            self._clear_slots(change.fresh)
            raise
        return change

    def _zero_counters(self, fresh: list[int]) -> None:
        """A reused slot starts counting from zero: the counters of `fresh`
        slots that are not zero already (before any table names them).
        Per-CPU maps take no batch update, so only those are written."""
        counters = self.maps.backend_packets
        if len(fresh) > 64:  # one read of them all beats a read each
            sums = counters.counter_sums()
            nonzero = [i for i in fresh if sums[i]]
        else:
            nonzero = [i for i in fresh if any(counters.lookup(i) or ())]
        for i in nonzero:
            counters.update(i, 0)

    def _clear_slots(self, fresh: list[int]) -> None:
        if fresh:
            self.maps.backends.update_many([(i, BackendSlot()) for i in fresh])

    def add_backend(self, vip: str, port: int, proto: str, backend: Backend) -> Service:
        slots = self._slots()  # one read of the backends map for the whole change
        current = self._existing(vip, port, proto, slots)
        kept = tuple(b for b in current.backends if b.name != backend.name)
        updated = dataclasses.replace(current, backends=kept + (backend,))
        self.put_many([updated], slots)
        return updated

    def delete_backend(self, vip: str, port: int, proto: str, ip: str, bport: int) -> Service:
        slots = self._slots()
        current = self._existing(vip, port, proto, slots)
        kept = tuple(b for b in current.backends if (b.ip, b.port) != (ip, bport))
        if len(kept) == len(current.backends):
            raise SpecError(f"{current.frontend} has no backend {ip}:{bport}")
        if not kept:
            raise SpecError(f"{ip}:{bport} is the last backend of {current.frontend}: delete the service instead")
        updated = dataclasses.replace(current, backends=kept)
        self.put_many([updated], slots)
        return updated

    def delete(self, vip: str, port: int, proto: str) -> bool:
        """Delete a service; False if there was none."""
        key = service_key(vip, port, proto)
        if self.maps.services.lookup(key) is None:
            return False
        self.delete_many([(vip, port, proto)])
        return True

    def delete_many(self, frontends: list[tuple[str, int, str]]) -> None:
        """Delete services (each must exist) in one update of the services
        map; their slots are freed and their flows' entries dropped after."""
        keys = [service_key(*frontend) for frontend in frontends]
        self.maps.services.delete_many(keys)
        slots = self._slots()
        self._free([i for key in keys for i in slots.of(key)], slots)

    def _existing(self, vip: str, port: int, proto: str, slots: SlotView) -> Service:
        current = self.lookup(vip, port, proto, slots)
        if current is None:
            raise SpecError(f"no service {vip}:{port}/{proto}")
        return current

    def _table_map(self, service: Service, placed: list[int]) -> Map:
        """A new inner map holding the service's table over its ready backends."""
        ready = [(ep.name, ep.weight, slot) for ep, slot in zip(service.backends, placed, strict=True)
                 if ep.weight > 0]
        if len(ready) > self.table_backends:
            raise SpecError(f"{service.frontend} has {len(ready)} backends: at most {self.table_backends} per service "
                            f"(--max-service-backends)")
        # Each entry: an index into slot[], the ready backends' slots.
        entries = maglev.build_entries([(name, weight) for name, weight, _ in ready], self.maglev_size)
        table = self.table_type()
        table.size = len(entries)  # 0 when every backend drains: new flows are dropped
        table.backends = len(ready)
        if entries:
            ctypes.memmove(table.entry, entries.buffer_info()[0], len(entries) * 2)
        slots = array.array("I", (slot for _, _, slot in ready))
        ctypes.memmove(table.slot, slots.tobytes(), len(slots) * 4)
        inner = self._new_table_map()
        try:
            inner.bind(ctypes.c_uint32, self.table_type).update(0, table)
        except BaseException:
            inner.close()
            raise
        return inner

    def _swap_in(self, changes: list[_Change]) -> None:
        """Point each service at its new table, all in one update; after it
        the services map holds the tables (our fds are closed by the caller)."""
        services = self.maps.services
        try:
            services.update_many([(change.key, change.table.fd) for change in changes])
        except BpfError as exc:
            if exc.errno != errno.E2BIG:
                raise
            raise BatchError(errno.E2BIG, f"service map is full ({services.max_entries} services)",
                             exc.done if isinstance(exc, BatchError) else 0) from None

    def _new_table_map(self) -> Map:
        """An inner map like the services map's template: from the object when
        we loaded it, else (a running instance's pins) as its loader recorded."""
        services = self.maps.services
        if services.inner is not None:
            return services.create_inner()
        config = self.maps.config.lookup(0)
        # The object's BTF, through any of its maps that has it (libbpf may
        # have created the map of maps without: 6.1 refuses BTF there).
        btf_fd = next((m.btf_fd for m in (services, self.maps.config, self.maps.backends) if m.btf_fd >= 0), -1)
        btf = None
        if config is not None and config.table_btf_value_id and btf_fd >= 0:
            btf = (btf_fd, config.table_btf_key_id, config.table_btf_value_id)
        return Map.create("maglev", BPF_MAP_TYPE_ARRAY, 4, ctypes.sizeof(self.table_type), 1, btf)

    def _free(self, gone, slots: SlotView) -> None:
        gone = {i: slots[i] for i in gone}
        if not gone:
            return
        for i in gone:
            self.maps.backends.update(i, BackendSlot())  # dead: pinned flows ask the table again
        self.purge_flows(gone)

    def purge_flows(self, gone: dict[int, BackendSlot]) -> int:
        """Delete the connection entries (both directions) of flows pinned to
        the slots `gone`; returns how many flows were dropped."""
        # Read in batches, deleted in batches: a busy load balancer holds
        # tens of thousands of flows (measured: 60,000 flows, 15,000 of them
        # purged, 1.1 s one entry at a time).
        doomed = [(flow, gone[slot]) for flow, slot in self.maps.flows.items_batch() if slot in gone]
        dropped = self.maps.flows.delete_many([flow for flow, _ in doomed], missing_ok=True)
        self.maps.replies.delete_many([FlowKey(b.ip, flow.saddr, b.port, flow.sport, flow.proto) for flow, b in doomed],
                                      missing_ok=True)  # an LRU map may have evicted some meanwhile
        return dropped
