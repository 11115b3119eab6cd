"""Each backend slot's next hop, kept in xdp_dnat's backend_hops map from
the kernel's own routing and neighbour tables, so a packet needs no FIB
lookup (bpf/xdp_dnat.h's struct backend_hop; HopTable: how a hop changes
without a packet ever reading half of one).

A thread in the instance's namespace works out every backend's hop as the
kernel would route a packet to it (`ip route get`: the egress interface,
the gateway if any, the route's MTU; the neighbour entry of the backend or
its gateway, valid in the kernel's sense; the interface's MAC) and writes
it; what it cannot work out (no route, a neighbour not resolved yet, a
route that is not plain unicast) it deletes, and the program asks
bpf_fib_lookup, which gives the kernel's answer (ARP resolution included).
The thread listens to the kernel's route, neighbour and link events: a
neighbour event updates the hops through that neighbour, a route or link
event all of them, each within milliseconds. The loader tells it when the
backends change (Keeper.track).
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import select
import signal
import socket
import threading
from collections.abc import Callable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from bpflab.host import rcu
from bpflab.host.netns import entered
from bpflab.libbpf import Map
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.services import BackendHop

# Groups of the kernel's route netlink events (linux/rtnetlink.h).
RTMGRP_LINK, RTMGRP_NEIGH, RTMGRP_IPV4_ROUTE = 0x1, 0x4, 0x40
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
RTN_UNICAST = 1
POLL_S = 0.05  # how often the thread looks at its stop and track requests
HOP_NONE = 0xFFFFFFFF  # bpf/xdp_dnat.h: backend_hop_live's value for no kept hop


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


@dataclasses.dataclass
class Tables:
    """The kernel's neighbours and links, read once for a pass over many
    backends (a dump each, not a query per backend)."""

    neighbours: dict[tuple[int, str], str]  # (ifindex, address) -> MAC
    links: dict[int, tuple[str, int]]  # ifindex -> (MAC, MTU)

    @classmethod
    def read(cls, ipr: IPRoute) -> Tables:
        # The kernel gives an entry's address only in a valid state (NUD_VALID,
        # neigh_fill_info), the states in which bpf_fib_lookup gives it too.
        neighbours = {(n["ifindex"], n.get_attr("NDA_DST")): n.get_attr("NDA_LLADDR") for n in ipr.get_neighbours()
                      if n.get_attr("NDA_LLADDR")}
        links = {link["index"]: (link.get_attr("IFLA_ADDRESS"), link.get_attr("IFLA_MTU")) for link in ipr.get_links()}
        return cls(neighbours, links)


def work_out(ipr: IPRoute, tables: Tables, ip: str) -> tuple[BackendHop, tuple[int, str]] | None:
    """`ip`'s hop as the kernel routes to it, and the neighbour (ifindex,
    address) it depends on; None where the kernel gives no plain answer."""
    try:
        routes = ipr.route("get", dst=ip)
    except NetlinkError:  # no route (ENETUNREACH and kin): the FIB says so too
        return None
    if not routes:
        return None
    route = routes[0]
    if route["type"] != RTN_UNICAST:
        return None
    oif, via = route.get_attr("RTA_OIF"), route.get_attr("RTA_GATEWAY") or ip
    lladdr, link = tables.neighbours.get((oif, via)), tables.links.get(oif)
    if not lladdr or link is None or not link[0]:
        return None
    metrics = route.get_attr("RTA_METRICS")
    mtu = (metrics.get_attr("RTAX_MTU") if metrics else None) or link[1]
    hop = BackendHop(ip_be32(ip), oif, mtu)
    hop.smac[:] = mac_bytes(link[0])
    hop.dmac[:] = mac_bytes(lladdr)
    return hop, (oif, via)


class HopTable:
    """xdp_dnat's kept next hops as its packets read them: two copies of each
    slot's hop in backend_hops (2 * slot + copy) and, in backend_hop_live,
    the copy packets read (bpf/xdp_dnat.bpf.c: arrays, for an index instead
    of a hash per packet). An array entry is written in place, so a change
    writes the copy no packet reads, waits for an RCU grace period (every
    packet after it sees the whole copy), then points packets at it; a copy
    pointed away from is written again only after another grace period (no
    packet still reads it). Dropping a hop points packets at none at once:
    a value read mid-write is no hop to the program either."""

    def __init__(self, copies: Map, live: Map, grace: Callable[[], None] = rcu.grace_period):
        self.copies = copies.bind(ctypes.c_uint32, BackendHop)
        self.live = live.bind(ctypes.c_uint32, ctypes.c_uint32)
        self.grace = grace
        self._retired = False  # a copy was pointed away from since the last grace period
        self._read: dict[int, bytes] = {}  # slot -> the hop its packets read, as written

    @classmethod
    def of(cls, obj) -> HopTable:
        return cls(obj.map("backend_hops"), obj.map("backend_hop_live"))

    def write(self, changes: dict[int, BackendHop | None]) -> None:
        """Each slot's new hop, None for none (the program asks the FIB);
        all of them with two grace periods at most."""
        point: list[tuple[int, int]] = []
        writes: list[tuple[int, BackendHop]] = []
        for slot, hop in changes.items():
            if (bytes(hop) if hop is not None else None) == self._read.get(slot):
                continue  # what packets read already (a neighbour confirmed, a route event elsewhere)
            if hop is None:
                point.append((slot, HOP_NONE))
                del self._read[slot]
                continue
            self._read[slot] = bytes(hop)
            spare = 1 if self.live.lookup(slot) == 0 else 0
            writes.append((2 * slot + spare, hop))
            point.append((slot, spare))
        if writes:
            if self._retired:  # a packet may still read a copy pointed away from
                self.grace()
            self.copies.update_many(writes)
            self.grace()  # the copies whole everywhere before a packet is pointed at them
            self._retired = False
        if point:
            self.live.update_many(point)
            self._retired = True

    def items(self) -> dict[int, BackendHop]:
        """slot -> the hop its packets read now."""
        out = {}
        for slot, copy in self.live.items_batch():
            if copy <= 1:
                hop = self.copies.lookup(2 * slot + copy)
                if hop is not None and hop.ip:
                    out[slot] = hop
        return out

    def clear(self) -> None:
        """No slot has a hop: every packet asks the FIB."""
        self.live.update_many([(slot, HOP_NONE) for slot in range(self.live.max_entries)])
        self._read.clear()
        self._retired = True


class Keeper:
    """The thread that keeps `hops` (xdp_dnat's kept next hops) right."""

    def __init__(self, hops: HopTable, netns: str | None):
        self.hops = hops
        self.netns = netns
        self._wanted: dict[int, str] = {}  # slot -> backend IP, as last tracked
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xdp_dnat next hops", daemon=True)

    def start(self, slots: dict[int, str]) -> None:
        """Work out every hop of `slots` (slot -> backend IP), then keep them;
        meanwhile the program asks the FIB."""
        self.track(slots)
        self._thread.start()

    def ready(self, timeout: float) -> bool:
        """Whether the first pass (every hop of the slots started with) was
        done within `timeout` seconds; a failure before is raised."""
        done = self._ready.wait(timeout)
        if self._error is not None:
            raise self._error
        return done

    def track(self, slots: dict[int, str]) -> None:
        """The backends now in their slots: hops are worked out for new ones
        and dropped for slots no longer used."""
        with self._lock:
            if slots == self._wanted:
                return
            self._wanted = dict(slots)
        self._changed.set()

    def failure(self) -> str | None:
        """Why the thread stopped on its own (the hops were dropped then: the
        FIB answers every packet), or None while it keeps them."""
        return None if self._error is None else f"{type(self._error).__name__}: {self._error}"

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the thread -----------------------------------------------------------
    def _run(self) -> None:
        # Signals are the main thread's: one delivered to this thread would
        # bypass the main thread's deferral (interrupts.deferred blocks them
        # there only) and interrupt it inside a library call (measured: an
        # event loop half made by pyroute2, a traceback after the exit line).
        signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))
        try:
            with entered(self.netns):
                events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
                ipr = IPRoute()
            with contextlib.closing(events), ipr:
                events.bind((0, RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE))
                self._keep(ipr, events)
        except BaseException as exc:  # reported by ready(), or later by failure()
            # No keeper, no kept hops: a hop that can go stale is worse than
            # asking the FIB for every packet. Dropped before the failure is
            # told, so whoever is told finds them gone.
            with contextlib.suppress(Exception):
                self.hops.clear()
            self._error = exc
            self._ready.set()

    def _keep(self, ipr: IPRoute, events: socket.socket) -> None:
        through: dict[tuple[int, str], set[int]] = {}  # neighbour -> slots whose hop goes through it
        via_of: dict[int, tuple[int, str]] = {}  # slot -> the neighbour of its hop
        done: dict[int, str] = {}  # slot -> IP whose hop is written (or known to have none)
        marshal = MarshalRtnl()
        wanted: dict[int, str] = {}
        first = True
        while not self._stop.is_set():
            redo: set[int] = set()
            changes: dict[int, BackendHop | None] = {}  # written together at the end of the pass
            everything = False
            if self._changed.is_set() or first:
                self._changed.clear()
                with self._lock:
                    wanted = dict(self._wanted)
                for slot in [s for s in done if wanted.get(s) != done[s]]:
                    changes[slot] = None
                    del done[slot]
                    if slot in via_of:
                        through[via_of.pop(slot)].discard(slot)
                redo |= {s for s in wanted if s not in done}
            for message in self._drain(events, marshal):
                if message is not None and message["header"]["type"] in (RTM_NEWNEIGH, RTM_DELNEIGH):
                    redo |= through.get((message["ifindex"], message.get_attr("NDA_DST")), set())
                else:  # a route or a link changed (or events were lost): any hop may have
                    everything = True
            if everything:
                redo = set(wanted)
            redo &= set(wanted)
            tables = Tables.read(ipr) if redo else None
            for slot in redo:
                hop = work_out(ipr, tables, wanted[slot])
                if slot in via_of:
                    through[via_of.pop(slot)].discard(slot)
                changes[slot] = None if hop is None else hop[0]
                if hop is not None:
                    through.setdefault(hop[1], set()).add(slot)
                    via_of[slot] = hop[1]
                done[slot] = wanted[slot]
            self.hops.write(changes)
            if first:
                first = False
                self._ready.set()
            select.select([events], [], [], POLL_S)

    @staticmethod
    def _drain(events: socket.socket, marshal: MarshalRtnl) -> list:
        out = []
        while True:
            try:
                data = events.recv(1 << 16)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # events lost: work every hop out again
                    out.append(None)
                    continue
                raise
            out.extend(marshal.parse(data))
