"""xdp_dnat: a Service load balancer (XDP forward path + tc return path).

    python -m bpflab.loaders.xdp_dnat IFACE [--netns NS] [--mode native|generic]
                               [--service VIP:PORT/PROTO=B1:P1[@W],B2:P2[@W],... ...]
                               [--maglev-size M] [--max-services N] [--max-backends N]
                               [--max-service-backends N] [--max-flows N] [--no-return-path]
                               [--fib-per-packet]
    python -m bpflab.loaders.xdp_dnat service add  IFACE [--netns NS] SPEC...
    python -m bpflab.loaders.xdp_dnat service del  IFACE [--netns NS] VIP:PORT/PROTO...
    python -m bpflab.loaders.xdp_dnat service list IFACE [--netns NS] [--json]
    python -m bpflab.loaders.xdp_dnat backend add  IFACE [--netns NS] VIP:PORT/PROTO B:P[@W]...
    python -m bpflab.loaders.xdp_dnat backend del  IFACE [--netns NS] VIP:PORT/PROTO B:P...
    python -m bpflab.loaders.xdp_dnat apply        IFACE [--netns NS] -f FILE [--json]
    python -m bpflab.loaders.xdp_dnat stats        IFACE [--netns NS] [--json]

Without --service the original's 10.96.0.10:80/tcp=10.244.1.5:8080 is
installed. A new flow's backend comes from the service's Maglev table; the
flow then keeps it (an LRU connection map) until the backend is removed.
The return path (replies from backends back to the VIP) goes on the
interfaces of the namespace that lead to the backends, found from the
kernel's routes, and follows backends added later.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import json
import sys

from bpflab.host import interrupts
from bpflab.host.commandline import UsageError, positive_float, positive_int
from bpflab.host.instances import Instance, running_pin_dir
from bpflab.host.netns import entered
from bpflab.libbpf import BPF_MAP_TYPE_ARRAY, BpfObject, Map
from bpflab.libbpf.btf import check_mirror
from bpflab.loaders import cli, maglev
from bpflab.loaders.base import Loader
from bpflab.loaders.interfaces import TcOnInterface
from bpflab.loaders.service_table import MAP_NAMES, DnatConfig, DnatMaps, ServiceTable, instance_config
from bpflab.loaders.services import (
    DEFAULT_SERVICE,
    BackendHop,
    BackendSlot,
    FlowKey,
    MaglevTable,
    ServiceKey,
    parse_backend,
    parse_frontend,
    parse_service,
    table_bytes,
)

HOPS_FIRST_PASS_S = 10.0  # how long attaching waits for the first next hops

# Room for the backends of a service in each table: a table then takes
# 36868 bytes at the default size (4 bytes a backend, 2 an entry).
DEFAULT_TABLE_BACKENDS = 1024

VERDICTS = ("rewritten", "redirected", "not_service", "malformed", "fragment", "fib_no_neigh", "fib_fail",
            "reply_rewritten", "no_backend")
PINNED_MAPS = MAP_NAMES + ("dnat_verdicts",)


def read_verdicts(verdict_map: Map) -> dict[str, int]:
    return dict(zip(VERDICTS, verdict_map.counter_sums(), strict=True))


def check_mirrors(obj: BpfObject) -> None:
    btf = obj.btf
    for name, mirror in (("service_key", ServiceKey), ("backend", BackendSlot), ("maglev_table", MaglevTable),
                         ("flow_key", FlowKey), ("dnat_config", DnatConfig), ("backend_hop", BackendHop)):
        check_mirror(btf, name, mirror)

    if obj.map("dnat_verdicts").max_entries != len(VERDICTS):
        raise TypeError(f"dnat_verdicts has {obj.map('dnat_verdicts').max_entries} entries, the loader knows "
                        f"{len(VERDICTS)} verdicts: rebuild (make xdp_dnat)")


def interfaces_towards(ips: list[str], netns: str | None) -> set[str]:
    """The interfaces the kernel's routes use to reach `ips` (in netns)."""
    # Imported here: the pyroute2 package costs 0.4 s to import (seconds in
    # an emulated VM), and only the return path needs it.
    from pyroute2 import IPRoute

    found = set()
    # Every interval: a SIGTERM that lands inside pyroute2's asyncio loop
    # leaves never-awaited coroutines and tracebacks behind; after it, none.
    with interrupts.deferred(), entered(netns), IPRoute() as ipr:
        for ip in ips:
            with contextlib.suppress(Exception):  # unreachable backend: no interface
                route = ipr.route("get", dst=ip)[0]
                found.add(ipr.get_links(route.get("RTA_OIF"))[0].get("IFLA_IFNAME"))
    return found


def cut_tables(obj: BpfObject, maglev_size: int, table_backends: int) -> Map:
    """Before `obj` loads: its tables cut to `maglev_size` entries and
    `table_backends` backends (the object declares room for the largest),
    the program's bounds and the services map's template of its inner maps
    alike. Returns the template, to close once the object loaded."""
    obj.set_constant("maglev_size", maglev_size)
    obj.set_constant("table_backends", table_backends)
    template = Map.create("maglev_table", BPF_MAP_TYPE_ARRAY, 4, table_bytes(maglev_size, table_backends), 1)
    obj.map("services").set_inner_template(template)
    return template


def backend_map_sizes(slots: int) -> dict[str, int]:
    """The maps indexed by backend slot, sized for `slots` slots (two
    copies of each slot's next hop: nexthops.HopTable)."""
    return {"backends": slots, "backend_packets": slots, "backend_hop_live": slots, "backend_hops": 2 * slots}


class XdpDnat(Loader):
    """Rewrite traffic to service VIPs towards their backends."""

    name = "xdp_dnat"

    def __init__(self, iface: str, *, netns: str | None = None, services: list | tuple = (DEFAULT_SERVICE,),
                 return_path: bool = True, max_services: int | None = None, max_backends: int | None = None,
                 max_flows: int | None = None, maglev_size: int = maglev.DEFAULT_SIZE,
                 max_service_backends: int = DEFAULT_TABLE_BACKENDS, next_hops: bool = True, **kwargs):
        self.services, self.return_path = list(services), return_path
        self.sizes = {"services": max_services, **(backend_map_sizes(max_backends) if max_backends else {}),
                      "dnat_flows": max_flows, "dnat_replies": max_flows}
        self.next_hops = next_hops
        self.hop_keeper = None
        self.maglev_size = maglev.check_size(maglev_size)
        self.table_backends = check_table_backends(max_service_backends)
        self.instance: Instance | None = None
        self.return_links: dict[str, TcOnInterface] = {}
        super().__init__(iface, netns=netns, **kwargs)

    def configure(self, obj: BpfObject) -> None:
        # One instance per interface: a second one fails before loading.
        self.instance = Instance("xdp_dnat", self.iface, self.netns)
        for name, size in self.sizes.items():
            if size:
                obj.map(name).set_max_entries(size)
        self.table_template = cut_tables(obj, self.maglev_size, self.table_backends)

    def setup(self, obj: BpfObject) -> None:
        self.table_template.close()  # the services map keeps what it needs of it
        check_mirrors(obj)
        for name in PINNED_MAPS:
            obj.map(name).pin(self.instance.pin_path(name))
        obj.map("dnat_config").bind(ctypes.c_uint32, DnatConfig).update(
            0, instance_config(obj.map("services"), 0, self.maglev_size, self.table_backends))
        self.table = ServiceTable(DnatMaps.of(obj), self.maglev_size, self.table_backends)
        self.table.put_many([spec if not isinstance(spec, str) else parse_service(spec) for spec in self.services])

    def attached(self) -> None:
        config = self.obj.map("dnat_config").bind(ctypes.c_uint32, DnatConfig)
        # replies leave where clients reach the VIP
        config.update(0, instance_config(self.obj.map("services"), self.ifindex, self.maglev_size,
                                                  self.table_backends))
        if self.return_path:
            self.refresh_return_path()
        if self.next_hops:
            from bpflab.loaders.nexthops import HopTable, Keeper  # pyroute2: imported where it is used (see above)

            self.hop_keeper = Keeper(HopTable.of(self.obj), self.netns)
            self.hop_keeper.start(self.table.backend_slots())
            # Bounded: with many backends the first pass may take longer, and
            # the FIB answers every packet without a hop meanwhile.
            self.hop_keeper.ready(HOPS_FIRST_PASS_S)

    def track_backends(self) -> str | None:
        """Next hops for the backends now in the maps (`service`, `backend`
        and `apply` change them from other processes); why the keeper
        stopped, the first time it is seen (every packet then asks the FIB)."""
        if self.hop_keeper is None:
            return None
        failure = self.hop_keeper.failure()
        if failure is not None:
            self.hop_keeper = None
            return failure
        self.hop_keeper.track(self.table.backend_slots())
        return None

    def refresh_return_path(self) -> list[str]:
        """Attach the return path to interfaces towards backends it does not
        cover yet; returns the interfaces newly attached."""
        ips = self.table.backend_ips()  # every interval: slots only, no table
        wanted = interfaces_towards(sorted(ips), self.netns)
        added = []
        for ifname in sorted(wanted - set(self.return_links)):
            prog = self.obj.program("dnat_return")
            self.return_links[ifname] = TcOnInterface(prog.fd, ifname, self.netns)
            added.append(ifname)
        return added

    def verdicts(self) -> dict[str, int]:
        return read_verdicts(self.obj.map("dnat_verdicts"))

    def detaching(self) -> None:
        if self.hop_keeper is not None:
            self.hop_keeper.stop()
            self.hop_keeper = None
        for link in self.return_links.values():
            link.close()
        self.return_links = {}
        if self.instance is not None:
            self.instance.release()
            self.instance = None


def format_verdicts(v: dict[str, int]) -> str:
    return " ".join(f"{k}={n}" for k, n in v.items())


def format_state(state) -> str:
    """One line per service: its backends, each with its weight (when not 1)
    and the packets it was sent."""
    backends = ", ".join(f"{b.backend}{' draining' if b.backend.weight == 0 else ''} ({b.packets} packets)"
                         for b in state.backends)
    return f"{state.service.frontend} -> {backends}" + ("" if state.table_size else "  [no ready backend: dropped]")


def run(args) -> int:
    cli.require_root()
    cli.require_object(args.object)
    services = [parse_service(s) for s in (args.service or [DEFAULT_SERVICE])]
    with XdpDnat(args.iface, netns=args.netns, mode=args.mode, services=services,
                 return_path=not args.no_return_path, obj=args.object, force=args.force,
                 max_services=args.max_services, max_backends=args.max_backends, max_flows=args.max_flows,
                 maglev_size=args.maglev_size, max_service_backends=args.max_service_backends,
                 next_hops=not args.fib_per_packet) as dnat:
        cli.say_attached(dnat)
        if dnat.instance.stale:
            cli.say("xdp_dnat", "removed the pins of an earlier instance that died")
        for ifname, link in dnat.return_links.items():
            cli.say("xdp_dnat", f"return path on {ifname} ({link.kind})")
        if args.no_return_path:
            cli.say("xdp_dnat", "no return path (--no-return-path)")
        cli.say("xdp_dnat", f"services (Maglev tables of {dnat.maglev_size} entries):\n" + "\n".join(
            "  " + format_state(state) for state in dnat.table.states()))
        ns = f" --netns {args.netns}" if args.netns else ""
        cli.say("xdp_dnat", f"change them with: python -m bpflab.loaders.xdp_dnat service|backend|apply ... "
                            f"{args.iface}{ns}")
        last = None
        try:
            while True:
                cli.sleep_watching(dnat, args.interval)
                failure = dnat.track_backends()
                if failure:
                    cli.say("xdp_dnat", f"next hops no longer kept ({failure}): every packet asks the FIB")
                if dnat.return_path:
                    for ifname in dnat.refresh_return_path():
                        cli.say("xdp_dnat", f"return path on {ifname} ({dnat.return_links[ifname].kind})")
                verdicts = dnat.verdicts()
                if verdicts != last:
                    print(f"xdp_dnat: {format_verdicts(verdicts)}", flush=True)
                    last = verdicts
        finally:
            print(f"xdp_dnat: final: {format_verdicts(dnat.verdicts())}", flush=True)
            dnat.close()  # says it detached, when a signal stops it
    return 0


def open_table(args) -> ServiceTable:
    return ServiceTable(DnatMaps.pinned(running_pin_dir("xdp_dnat", args.iface, args.netns)))


def _say(args, text: str, data) -> None:
    print(json.dumps(data) if args.json else text)


def service_command(args, table: ServiceTable) -> None:
    if args.action == "add":
        table.put_many(args.parsed)  # all or, refused, none: one line naming what has no room
        for s in args.parsed:
            _say(args, f"added {s}", {"added": s.as_json()})
    elif args.action == "del":
        for vip, port, proto in args.parsed:
            if not table.delete(vip, port, proto):
                raise UsageError(f"no service {vip}:{port}/{proto}")
            _say(args, f"deleted {vip}:{port}/{proto}", {"deleted": {"vip": vip, "port": port, "proto": proto}})
    else:
        states = table.states()
        if args.json:
            print(json.dumps([st.as_json() for st in states]))
        else:
            for st in states:
                print(format_state(st))


def backend_command(args, table: ServiceTable) -> None:
    vip, port, proto = args.frontend
    for ep in args.parsed:
        if args.action == "add":
            now = table.add_backend(vip, port, proto, ep)
            _say(args, f"added backend {ep} to {vip}:{port}/{proto}", {"added": dataclasses.asdict(ep),
                                                                         "service": now.as_json()})
        else:
            now = table.delete_backend(vip, port, proto, ep.ip, ep.port)
            _say(args, f"deleted backend {ep.name} from {vip}:{port}/{proto}",
                 {"deleted": {"ip": ep.ip, "port": ep.port}, "service": now.as_json()})


def manage(args) -> int:
    cli.require_root()
    if args.command == "stats":
        with Map.from_pin(running_pin_dir("xdp_dnat", args.iface, args.netns) / "dnat_verdicts") as m:
            v = read_verdicts(m)
        print(json.dumps(v) if args.json else format_verdicts(v))
        return 0
    if args.command == "apply":
        from bpflab.loaders import kube  # YAML parsing only here

        desired = kube.load_services(args.file)  # every object valid, or nothing changes
    table = open_table(args)
    try:
        if args.command == "service":
            service_command(args, table)
        elif args.command == "backend":
            backend_command(args, table)
        else:
            report = kube.apply(table, desired)
            print(json.dumps(report.as_json()) if args.json else report.text())
    finally:
        table.maps.close()
    return 0


def _parse_specs(args, p) -> None:
    """Every argument parsed before anything changes."""
    if args.command == "service":
        if args.action in ("add", "del") and not args.specs:
            p.error(f"service {args.action} needs at least one service")
        args.parsed = ([parse_service(s) for s in args.specs] if args.action == "add"
                       else [parse_frontend(s) for s in args.specs])
    elif args.command == "backend":
        if len(args.specs) < 2:
            p.error(f"backend {args.action} needs VIP:PORT/PROTO and at least one BACKEND:PORT")
        args.frontend = parse_frontend(args.specs[0])
        args.parsed = [parse_backend(s) for s in args.specs[1:]]


MANAGING = {  # command: (help, description)
    "service": ("add, delete or list services", "Add, delete or list the services of a running xdp_dnat instance."),
    "backend": ("add or delete backends", "Add or delete backends of a service of a running xdp_dnat instance."),
    "stats": ("its verdict counters", "Show a running xdp_dnat instance's verdict counters."),
    "apply": ("its services from Kubernetes objects",
              "Make a running instance's services match Kubernetes Services and EndpointSlices "
              "(kubectl get services,endpointslices -o json, or YAML)."),
}
RUN_DESCRIPTION = "Balance traffic to service VIPs over their backends (Maglev, flows pinned)."


def parser(commands: dict[str, argparse.ArgumentParser] | None = None) -> argparse.ArgumentParser:
    """`run` attaches an instance (`xdp_dnat IFACE ...` means `xdp_dnat run
    IFACE ...`); the others manage a running one through its pins. Each
    subcommand's parser goes into `commands`."""
    commands = {} if commands is None else commands
    p = cli.parser("xdp_dnat", RUN_DESCRIPTION + " Without a subcommand: run.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=type(p))
    run_p = sub.add_parser("run", help="attach an instance to IFACE and report its verdicts", description=RUN_DESCRIPTION)
    cli.add_interface_args(run_p, "xdp_dnat")
    run_p.add_argument("--service", action="append", metavar="VIP:PORT/PROTO=B:P[@W],...",
                       help=f"a service and its backends (repeatable; default {DEFAULT_SERVICE})")
    run_p.add_argument("--no-return-path", action="store_true", help="attach the XDP side only")
    run_p.add_argument("--fib-per-packet", action="store_true",
                       help="keep no next hops: every packet asks bpf_fib_lookup (as before the hops were kept)")
    run_p.add_argument("--interval", type=positive_float, default=5.0, metavar="S",
                       help="seconds between verdict counter reports (default 5)")
    run_p.add_argument("--max-services", type=positive_int, metavar="N",
                       help="size of the service map (default 1024)")
    run_p.add_argument("--max-backends", type=positive_int, metavar="N",
                       help="backend slots over all services (default 4096)")
    run_p.add_argument("--max-service-backends", type=table_backends, default=DEFAULT_TABLE_BACKENDS, metavar="N",
                       help=f"backends of one service (default {DEFAULT_TABLE_BACKENDS}, at most "
                            f"{maglev.MAX_BACKENDS}): each table has room for this many")
    run_p.add_argument("--max-flows", type=positive_int, metavar="N",
                       help="connections remembered (LRU, each direction; default 65536)")
    run_p.add_argument("--maglev-size", type=maglev_size, default=maglev.DEFAULT_SIZE, metavar="M",
                       help=f"entries of each service's Maglev table, a prime (default {maglev.DEFAULT_SIZE}, "
                            f"at most {maglev.MAX_SIZE})")
    commands["run"] = run_p
    for command, (summary, description) in MANAGING.items():
        m = commands[command] = sub.add_parser(command, help=f"a running instance: {summary}", description=description)
        if command == "service":
            m.add_argument("action", choices=("add", "del", "list"))
        elif command == "backend":
            m.add_argument("action", choices=("add", "del"))
        m.add_argument("iface", metavar="IFACE")
        m.add_argument("--netns", metavar="NS")
        m.add_argument("--json", action="store_true")
        if command == "apply":
            m.add_argument("-f", "--file", required=True, metavar="FILE", help="JSON or YAML; - for stdin")
        if command == "service":
            m.add_argument("specs", nargs="*", metavar="SPEC",
                           help="add: VIP:PORT/PROTO=B1:P1[@W],B2:P2[@W],... (replaces the backends of an existing "
                                "service); del: VIP:PORT/PROTO")
        elif command == "backend":
            m.add_argument("specs", nargs="*", metavar="SPEC",
                           help="VIP:PORT/PROTO, then BACKEND:PORT[@WEIGHT] (add; a backend already there gets the "
                                "new weight) or BACKEND:PORT (del: its flows end)")
    return p


def main(argv: list[str]) -> int:
    if argv[:1] not in ([c] for c in (*MANAGING, "run", "-h", "--help")):
        argv = ["run", *argv]  # the instance itself: `xdp_dnat IFACE ...`
    commands: dict[str, argparse.ArgumentParser] = {}
    p = parser(commands)
    if argv[0] in MANAGING:  # options may come between the specs: argparse's intermixed parsing, per subcommand
        args = commands[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        _parse_specs(args, commands[args.command])
        return manage(args)
    args = p.parse_args(argv)
    for spec in args.service or []:
        parse_service(spec)  # a bad spec fails before anything is loaded
    return run(args)


def check_table_backends(n: int) -> int:
    if not 1 <= n <= maglev.MAX_BACKENDS:
        raise ValueError(f"backends per service {n} is not between 1 and {maglev.MAX_BACKENDS} "
                         f"(a table entry is a 16-bit index)")
    return n


def table_backends(text: str) -> int:
    try:
        return check_table_backends(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc) if text.lstrip("-").isdigit() else f"not a number: '{text}'") from None


def maglev_size(text: str) -> int:
    import argparse

    try:
        return maglev.check_size(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc) if text.lstrip("-").isdigit() else f"not a number: '{text}'") from None


if __name__ == "__main__":
    cli.run("xdp_dnat", lambda: main(sys.argv[1:]))
