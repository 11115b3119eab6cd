"""xdp_dnat: a Service load balancer (XDP forward path + tc return path).

    python -m bpflab.loaders.xdp_dnat IFACE [--netns NS] [--mode native|generic]
                               [--service VIP:PORT/PROTO=BACKEND:PORT ...] [--no-return-path]
    python -m bpflab.loaders.xdp_dnat service add  IFACE [--netns NS] SPEC...
    python -m bpflab.loaders.xdp_dnat service del  IFACE [--netns NS] VIP:PORT/PROTO...
    python -m bpflab.loaders.xdp_dnat service list IFACE [--netns NS] [--json]
    python -m bpflab.loaders.xdp_dnat stats        IFACE [--netns NS] [--json]

Without --service the original's 10.96.0.10:80/tcp=10.244.1.5:8080 is
installed. The return path (replies from backends back to the VIP) goes on
the interfaces of the namespace that lead to the backends, found from the
kernel's routes, and follows services added later.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import sys

from bpflab.host.instances import Instance, running_pin_dir
from bpflab.host.netns import entered
from bpflab.libbpf import BpfObject, Map
from bpflab.libbpf.btf import check_mirror
from bpflab.loaders import cli
from bpflab.loaders.base import Loader
from bpflab.loaders.interfaces import TcAttachment
from bpflab.loaders.services import DEFAULT_SERVICE, Backend, ServiceKey, ServiceTable, parse_frontend, parse_service

VERDICTS = ("rewritten", "redirected", "not_service", "malformed", "fragment", "fib_no_neigh", "fib_fail",
            "reply_rewritten")
PINNED_MAPS = ("services", "service_by_backend", "dnat_verdicts")


class DnatConfig(ctypes.Structure):
    """Mirror of struct dnat_config (bpf/xdp_dnat.h)."""

    _fields_ = [("service_ifindex", ctypes.c_uint32)]


def read_verdicts(verdict_map: Map) -> dict[str, int]:
    counts = verdict_map.bind(ctypes.c_uint32, ctypes.c_uint64)
    return {name: sum(counts.lookup(i)) for i, name in enumerate(VERDICTS)}


def check_mirrors(obj: BpfObject) -> None:
    btf = obj.btf
    check_mirror(btf, "service_key", ServiceKey)
    check_mirror(btf, "backend", Backend)
    check_mirror(btf, "dnat_config", DnatConfig)
    if obj.map("dnat_verdicts").max_entries != len(VERDICTS):
        raise TypeError(f"dnat_verdicts has {obj.map('dnat_verdicts').max_entries} entries, the loader knows "
                        f"{len(VERDICTS)} verdicts: rebuild (make xdp_dnat)")


def interfaces_towards(ips: list[str], netns: str | None) -> set[str]:
    """The interfaces the kernel's routes use to reach `ips` (in netns)."""
    # Imported here: the pyroute2 package costs 0.4 s to import (seconds in
    # an emulated VM), and only the return path needs it.
    from pyroute2 import IPRoute

    found = set()
    with entered(netns), IPRoute() as ipr:
        for ip in ips:
            with contextlib.suppress(Exception):  # unreachable backend: no interface
                route = ipr.route("get", dst=ip)[0]
                found.add(ipr.get_links(route.get("RTA_OIF"))[0].get("IFLA_IFNAME"))
    return found


class XdpDnat(Loader):
    """Rewrite traffic to service VIPs towards their backends."""

    name = "xdp_dnat"

    def __init__(self, iface: str, *, netns: str | None = None, services: list | tuple = (DEFAULT_SERVICE,),
                 return_path: bool = True, max_services: int | None = None, **kwargs):
        self.services, self.return_path, self.max_services = list(services), return_path, max_services
        self.instance: Instance | None = None
        self.return_links: dict[str, TcAttachment] = {}
        super().__init__(iface, netns=netns, **kwargs)

    def configure(self, obj: BpfObject) -> None:
        # One instance per interface: a second one fails before loading.
        self.instance = Instance("xdp_dnat", self.iface, self.netns)
        if self.max_services:
            for name in ("services", "service_by_backend"):
                obj.map(name).set_max_entries(self.max_services)

    def setup(self, obj: BpfObject) -> None:
        check_mirrors(obj)
        for name in PINNED_MAPS:
            obj.map(name).pin(self.instance.pin_path(name))
        self.table = ServiceTable(obj.map("services"), obj.map("service_by_backend"))
        for spec in self.services:
            self.table.add(spec if not isinstance(spec, str) else parse_service(spec))

    def attached(self) -> None:
        config = self.obj.map("dnat_config").bind(ctypes.c_uint32, DnatConfig)
        config.update(0, DnatConfig(self.ifindex))  # replies leave where clients reach the VIP
        if self.return_path:
            self.refresh_return_path()

    def refresh_return_path(self) -> list[str]:
        """Attach the return path to interfaces towards backends it does not
        cover yet; returns the interfaces newly attached."""
        wanted = interfaces_towards(sorted({s.backend_ip for s in self.table.list()}), self.netns)
        added = []
        for ifname in sorted(wanted - set(self.return_links)):
            prog = self.obj.program("dnat_return")
            self.return_links[ifname] = TcAttachment(prog.fd, ifname, self.netns)
            added.append(ifname)
        return added

    def verdicts(self) -> dict[str, int]:
        return read_verdicts(self.obj.map("dnat_verdicts"))

    def teardown(self) -> None:
        for link in self.return_links.values():
            link.detach()
        self.return_links = {}
        if self.instance is not None:
            self.instance.release()
            self.instance = None


def format_verdicts(v: dict[str, int]) -> str:
    return " ".join(f"{k}={n}" for k, n in v.items())


def run(args) -> int:
    cli.require_root()
    cli.require_object(args.object)
    services = [parse_service(s) for s in (args.service or [DEFAULT_SERVICE])]
    with XdpDnat(args.iface, netns=args.netns, mode=args.mode, services=services,
                 return_path=not args.no_return_path, obj=args.object, force=args.force,
                 max_services=args.max_services) as dnat:
        cli.say_attached(dnat)
        if dnat.instance.stale:
            cli.say("xdp_dnat", "removed the pins of an earlier instance that died")
        for ifname, link in dnat.return_links.items():
            cli.say("xdp_dnat", f"return path on {ifname} ({link.kind})")
        if args.no_return_path:
            cli.say("xdp_dnat", "no return path (--no-return-path)")
        cli.say("xdp_dnat", "services:\n" + "\n".join(f"  {s.frontend} -> {s.backend_ip}:{s.backend_port}"
                                                        for s in dnat.table.list()))
        ns = f" --netns {args.netns}" if args.netns else ""
        cli.say("xdp_dnat", f"change them with: python -m bpflab.loaders.xdp_dnat service add|del|list {args.iface}{ns}")
        last = None
        try:
            while True:
                cli.sleep_watching(dnat, args.interval)
                if dnat.return_path:
                    for ifname in dnat.refresh_return_path():
                        cli.say("xdp_dnat", f"return path on {ifname} ({dnat.return_links[ifname].kind})")
                verdicts = dnat.verdicts()
                if verdicts != last:
                    print(f"xdp_dnat: {format_verdicts(verdicts)}", flush=True)
                    last = verdicts
        finally:
            print(f"xdp_dnat: final: {format_verdicts(dnat.verdicts())}", flush=True)
            dnat.close()
            cli.say("xdp_dnat", f"detached from {args.iface}")
    return 0


def open_table(args) -> tuple[ServiceTable, list[Map]]:
    pin_dir = running_pin_dir("xdp_dnat", args.iface, args.netns)
    maps = [Map.from_pin(pin_dir / name) for name in ("services", "service_by_backend")]
    return ServiceTable(*maps), maps


def manage(args) -> int:
    cli.require_root()
    if args.command == "stats":
        with Map.from_pin(running_pin_dir("xdp_dnat", args.iface, args.netns) / "dnat_verdicts") as m:
            v = read_verdicts(m)
        print(json.dumps(v) if args.json else format_verdicts(v))
        return 0
    if args.action == "add":
        new = [parse_service(s) for s in args.specs]  # all valid, or nothing changes
    elif args.action == "del":
        gone = [parse_frontend(s) for s in args.specs]
    table, maps = open_table(args)
    try:
        if args.action == "add":
            for s in new:
                table.add(s)
                print(f"added {s}")
        elif args.action == "del":
            for vip, port, proto in gone:
                if not table.delete(vip, port, proto):
                    raise cli.UsageError(f"no service {vip}:{port}/{proto}")
                print(f"deleted {vip}:{port}/{proto}")
        else:
            rows = table.list()
            if args.json:
                print(json.dumps([s.as_json() for s in rows]))
            else:
                for s in rows:
                    print(f"{s.frontend} -> {s.backend_ip}:{s.backend_port}")
    finally:
        for m in maps:
            m.close()
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] in (["service"], ["stats"]):
        command = argv[0]
        p = cli.parser(f"xdp_dnat {command}", "Change or show a running xdp_dnat instance.")
        if command == "service":
            p.add_argument("action", choices=("add", "del", "list"))
        p.add_argument("iface", metavar="IFACE")
        p.add_argument("--netns", metavar="NS")
        p.add_argument("--json", action="store_true")
        if command == "service":
            p.add_argument("specs", nargs="*", metavar="SPEC")
        args = p.parse_intermixed_args(argv[1:])
        args.command = command
        if command == "service" and args.action in ("add", "del") and not args.specs:
            p.error(f"service {args.action} needs at least one service")
        return manage(args)
    p = cli.parser("xdp_dnat", "Rewrite traffic to service VIPs towards their backends.")
    cli.add_interface_args(p, "xdp_dnat")
    p.add_argument("--service", action="append", metavar="VIP:PORT/PROTO=BACKEND:PORT",
                   help=f"a service (repeatable; default {DEFAULT_SERVICE})")
    p.add_argument("--no-return-path", action="store_true", help="attach the XDP side only")
    p.add_argument("--interval", type=cli.positive_float, default=5.0, metavar="S",
                   help="seconds between verdict counter reports (default 5)")
    p.add_argument("--max-services", type=cli.positive_int, metavar="N",
                   help="size of the service map (default 1024)")
    args = p.parse_args(argv)
    for spec in args.service or []:
        parse_service(spec)  # a bad spec fails before anything is loaded
    return run(args)


if __name__ == "__main__":
    cli.run("xdp_dnat", lambda: main(sys.argv[1:]))
