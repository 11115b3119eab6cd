"""service_change_ms: what changing services costs in user space and in
the kernel, on a loaded (not attached) xdp_dnat object:
- 100 services of three backends set one at a time (a table swap each:
  the kernel waits for an RCU grace period after every update call of a
  map of maps) and then all at once (put_many: one batch update, one wait);
- `backend del` of one of four backends with 60,000 pinned flows, a quarter
  of them its own (their entries are found and deleted in batches)."""
from __future__ import annotations

import time

from bpflab.libbpf import BpfObject
from bpflab.loaders.objects import object_path
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.service_table import DnatMaps, ServiceTable
from bpflab.loaders.services import Backend, FlowKey, Service

SERVICES = 100
FLOWS = 60_000
SIZE = 1021  # small tables: the swap, not the Maglev build, is measured


def services(generation: int) -> list[Service]:
    """SERVICES services, three backends each; each generation other backends."""
    return [Service(f"10.96.{i // 250}.{i % 250 + 1}", 80, "tcp",
                    tuple(Backend(f"10.244.{generation}.{3 * (i % 80) + b + 1}", 8080 + i // 80) for b in range(3)))
            for i in range(SERVICES)]


def measure() -> dict:
    with BpfObject(object_path("xdp_dnat")) as obj:
        table = ServiceTable(DnatMaps.of(obj), SIZE)
        t0 = time.perf_counter()
        for s in services(1):
            table.put(s)
        t1 = time.perf_counter()
        table.put_many(services(2))
        t2 = time.perf_counter()
        web = Service("10.96.9.1", 80, "tcp", tuple(Backend(f"10.244.9.{n}", 8080) for n in range(1, 5)))
        table.put(web)
        slots = {b.backend.ip: b.slot for s in table.states() if s.service.vip == web.vip for b in s.backends}
        pins = [(FlowKey(i + 1, ip_be32(web.vip), i & 0xFFFF, 0x5000, 6), slots[f"10.244.9.{i % 4 + 1}"])
                for i in range(FLOWS)]
        table.maps.flows.update_many(pins)
        t3 = time.perf_counter()
        table.delete_backend(web.vip, 80, "tcp", "10.244.9.2", 8080)
        t4 = time.perf_counter()
        left = len(table.maps.flows.items_batch())
    if left != FLOWS - FLOWS // 4:
        raise AssertionError(f"backend del left {left} of {FLOWS} flows, expected {FLOWS - FLOWS // 4}")
    return {"one_by_one_ms": round((t1 - t0) * 1000, 1), "all_at_once_ms": round((t2 - t1) * 1000, 1),
            "services": SERVICES, "backend_del_ms": round((t4 - t3) * 1000, 1), "flows": FLOWS}
