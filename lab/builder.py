"""Build a Topology into real namespaces and veths, and take it down again."""
from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import weakref
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.ethtool import Ethtool

from bpflab.host import forkserver, kernel, leftovers, netns, owners
from bpflab.host.forkserver import ForkedProcess
from bpflab.host.interrupts import announce, checkpoint, cleaned, deferred, interrupt_on
from bpflab.host.netns import entered
from bpflab.host.paths import BPFFS
from bpflab.host.processes import stop
from bpflab.host.waits import read_line, wait_until
from bpflab.lab import counters, node_processes, traffic
from bpflab.lab.checksums import verify_frame
from bpflab.lab.topology import Endpoint, Topology
from bpflab.libbpf import xdp

_live_labs: weakref.WeakSet[Lab] = weakref.WeakSet()


class Lab:
    """A built topology. `netns(node)` is the namespace of a node; teardown()
    removes every namespace, link, pin and process of this lab."""

    def __init__(self, topology: Topology, prefix: str, owner_pid: int | None):
        self.topology = topology
        self.prefix = prefix
        self.owner_pid = owner_pid
        self.namespaces = {node: f"{prefix}-{node}" for node in topology.nodes}
        self.pin_dir = BPFFS / prefix
        self._torn_down = False
        self._resources: list = []
        self.log = traffic.FrameLog()

    def netns(self, node: str) -> str:
        try:
            return self.namespaces[node]
        except KeyError:
            raise KeyError(f"lab {self.prefix} has no node '{node}' (has: {', '.join(self.namespaces)})") from None

    def endpoint(self, node: str, ifname: str) -> Endpoint:
        return self.topology.endpoint(node, ifname)

    def ifindex(self, node: str, ifname: str) -> int:
        from bpflab.host.netns import ifindex

        return ifindex(ifname, self.netns(node))

    # -- traffic ---------------------------------------------------------
    def send(self, node: str, ifname: str, frames) -> int:
        """Send scapy packets or raw bytes out of node's interface."""
        sender = traffic.Sender(self.netns(node), node, ifname, self.log)
        try:
            return sender.send(frames)
        finally:
            sender.close()

    def capture(self, node: str, ifname: str, match=None, *, outgoing: bool = False) -> traffic.Capture:
        """Start capturing frames that arrive at node's interface; `match`
        is a predicate on the parsed scapy packet."""
        return self._track(traffic.Capture(self.netns(node), node, ifname, match, self.log, outgoing))

    def popen(self, node: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start a process inside node; it is stopped at teardown at the latest."""
        return self._track(node_processes.popen(self.netns(node), argv, owner_pid=self.owner_pid, **kwargs))

    def serve(self, node: str, kind: str, host: str, port: int, *extra: str) -> subprocess.Popen:
        """Start one of lab.servers (http, tcp-echo, udp-echo) in node and
        wait until it listens."""
        return self.serve_all(node, [(kind, host, port, *extra)])

    def serve_all(self, node: str, specs: list[tuple]) -> subprocess.Popen:
        """Start several servers, each a tuple (kind, host, port, options...)
        as for serve(), in one process in node (a Python start-up each would be
        seconds in an emulated VM); wait until all of them listen."""
        # Run as a script: importing the lab package (scapy) would slow it down.
        script = Path(__file__).resolve().parent / "servers.py"
        words = [str(w) for i, spec in enumerate(specs) for w in (("+",) if i else ()) + tuple(spec)]
        proc = self._track(node_processes.popen_python(self.netns(node), [str(script), *words], owner_pid=self.owner_pid,
                                                stdout=subprocess.PIPE, text=True))
        what = ", ".join(f"{spec[0]} {spec[1]}:{spec[2]}" for spec in specs)
        line = read_line(proc.stdout, timeout=30, what=f"the servers in {node} ({what})")
        if line != "ready\n":
            raise RuntimeError(f"servers in {node} ({what}) did not start: {line!r}")
        return proc

    def run(self, node: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return node_processes.run(self.netns(node), argv, owner_pid=self.owner_pid, **kwargs)

    def snmp(self, node: str) -> dict[str, dict[str, int]]:
        return counters.snmp(self.netns(node))

    def checksum_problems(self, *, unchecked: bool = True) -> list[str]:
        """Every frame this lab captured with a bad checksum (lab.checksums
        judges it), every node whose kernel counted a checksum error, and
        (`unchecked`) every captured frame with something that could not be
        judged: nothing unjudged passes as right."""
        problems = []
        for frame in self.log.frames:
            if frame.direction == "captured":
                verdict = verify_frame(frame.data, partial=frame.partial)
                if verdict.problems or (unchecked and not verdict.complete):
                    problems.append(f"a frame captured at {frame.node}/{frame.ifname}: {verdict}\n"
                                    f"      {frame.data.hex()}")
        for node in self.namespaces:
            problems += [f"{node}: {name} = {n}" for name, n in counters.checksum_errors(self.netns(node)).items() if n]
        return problems

    def _track(self, thing):
        self._resources.append(thing)
        return thing

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        for thing in reversed(self._resources):
            with contextlib.suppress(Exception):
                if isinstance(thing, (subprocess.Popen, ForkedProcess)):
                    stop(thing)
                elif isinstance(thing, traffic.Capture):
                    thing.__exit__(None, None, None)
                else:
                    thing.close()
        with deferred():  # a signal must not leave half a lab
            checkpoint("lab-teardown")
            leftovers.destroy(list(self.namespaces.values()), [self.pin_dir])
            cleaned(f"removed the {self.topology.name} lab ({self.prefix})")
        _live_labs.discard(self)

    def keep(self) -> None:
        """Let this lab outlive its process (`python -m bpflab.lab up`): it is
        no longer torn down at exit; remove it with teardown() or a sweep."""
        _live_labs.discard(self)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()


IFA_F_NODAD = 0x02


def _configure_endpoint(ipr: IPRoute, end: Endpoint) -> None:
    idx = ipr.link_lookup(ifname=end.ifname)[0]
    if end.mac:
        ipr.link("set", index=idx, address=end.mac)
    if end.address:
        ip, plen = end.address.split("/")
        ipr.addr("add", index=idx, address=ip, prefixlen=int(plen))
    if end.address6:
        # No duplicate address detection: the address is usable at once and
        # no neighbour solicitation for it crosses the link.
        ip, plen = end.address6.split("/")
        ipr.addr("add", index=idx, address=ip, prefixlen=int(plen), family=socket.AF_INET6, flags=IFA_F_NODAD)
    ipr.link("set", index=idx, state="up")
    # After "up": veth acts on a GRO change only while the link is up.
    if not end.tx_checksum or end.gro is not None:
        with Ethtool() as ethtool:
            features = ethtool.get_features(end.ifname)
            if not end.tx_checksum:
                for name in ("tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6", "tx-checksum-sctp"):
                    if name in features.features:
                        features.features[name].enable = False
            if end.gro is not None:
                features.features["rx-gro"].enable = end.gro
            ethtool.set_features(end.ifname, features)
    if end.gro and not kernel.has("veth_gro_napi"):
        # Before 5.13 GRO alone does not make a veth take frames native XDP
        # redirects into its peer: an XDP program on it does (a pass-through one).
        fd = xdp.pass_program()
        try:
            xdp.attach_legacy(fd, idx, "native")
        finally:
            os.close(fd)


def _write_sysctl(key: str, value: str) -> None:
    # Opened from a thread inside the namespace, /proc/sys/net is that namespace's.
    Path("/proc/sys", *key.split(".")).write_text(value)


def _build_into(lab: Lab) -> None:
    topo = lab.topology
    for node, name in lab.namespaces.items():
        netns.create(name)
        with entered(name):
            for scope in ("all", "default"):
                if not topo.dual_stack(node):
                    # No router solicitations, DAD or MLD reports: the only
                    # frames on a lab link are the ones a test sends.
                    _write_sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", "1")
                    continue
                # IPv6, quietly: no link-local address (nothing to detect as
                # duplicate or to solicit routers from), no router advertisements.
                # (MLD reports still go out once the carrier is up: no setting
                # stops them; lab.topology.pair6 says so.)
                for key, value in (("addr_gen_mode", "1"), ("accept_dad", "0"), ("router_solicitations", "0"),
                                   ("accept_ra", "0")):
                    _write_sysctl(f"net.ipv6.conf.{scope}.{key}", value)
    # Each veth is created inside its a-side namespace with the peer placed
    # straight into the b-side one: nothing ever appears in the root namespace.
    for link in topo.links:
        with entered(lab.netns(link.a.node)), IPRoute() as ipr:
            ipr.link(
                "add", ifname=link.a.ifname, kind="veth",
                peer={"ifname": link.b.ifname, "net_ns_fd": lab.netns(link.b.node)},
            )
    for node, sysctls in topo.nodes.items():
        with entered(lab.netns(node)), IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            for link in topo.links:
                for end in (link.a, link.b):
                    if end.node == node:
                        _configure_endpoint(ipr, end)
            for key, value in sysctls.items():
                _write_sysctl(key, value)
            for neigh in topo.neighbours:
                if neigh.node == node:
                    ipr.neigh(
                        "replace", dst=neigh.ip, lladdr=neigh.mac, family=socket.AF_INET6 if ":" in neigh.ip else
                        socket.AF_INET, ifindex=ipr.link_lookup(ifname=neigh.dev)[0], state="permanent",
                    )
            for route in topo.routes:
                if route.node == node:
                    spec = {"dst": route.prefix, "family": socket.AF_INET6 if route.family == 6 else socket.AF_INET}
                    if route.via:
                        spec["gateway"] = route.via
                    if route.dev:
                        spec["oif"] = ipr.link_lookup(ifname=route.dev)[0]
                    if route.type == "local":
                        spec.update(type="local", scope=254)  # RT_SCOPE_HOST, as `ip route add local` sets
                    ipr.route("add", **spec)
    wait_until_running(lab)


IFF_RUNNING = 0x40
LINKS_RUNNING_TIMEOUT_S = 5.0


def wait_until_running(lab: Lab) -> None:
    """Until every lab link reports RUNNING (operational state up). The
    kernel sets it from a work item after the carrier comes on, a moment
    after `build` made both ends up; under load, a snapshot taken at once
    then saw the flag appear (1 of 200 builds with both cores busy). Frames
    flow before it, but whatever reads link state should find the lab settled."""
    for node in lab.topology.nodes:
        names = {end.ifname for link in lab.topology.links for end in (link.a, link.b) if end.node == node}
        with entered(lab.netns(node)), IPRoute() as ipr:
            def all_running(ipr: IPRoute = ipr, names: set[str] = names) -> bool:
                return all(link["flags"] & IFF_RUNNING for link in ipr.get_links() if link.get("ifname") in names)

            wait_until(all_running, timeout=LINKS_RUNNING_TIMEOUT_S, interval=0.002,
                       what=f"the lab's links in {node} ({', '.join(sorted(names))}) to be running")


def build(topology: Topology, *, prefix: str | None = None) -> Lab:
    """Build `topology` under a fresh owner-unique prefix. Dead owners' labs
    are swept first. If building fails, whatever was made is removed."""
    install_signal_cleanup()
    if prefix is None:
        swept = [left for left in leftovers.sweep(owned_only=True) if left.kind != "owner lock"]
        if swept:
            announce(f"swept what dead owners left: {leftovers.summary(swept)}")
        me = owners.current()
        lab = Lab(topology, me.new_prefix(), me.pid)
    else:
        lab = Lab(topology, prefix, None)
    _live_labs.add(lab)
    try:
        _build_into(lab)
        checkpoint("lab-built")
    except BaseException:
        lab.teardown()
        raise
    return lab


def teardown_all() -> None:
    """Every lab of this process, and the fork server its servers came from."""
    for lab in list(_live_labs):
        with contextlib.suppress(Exception):
            lab.teardown()
    forkserver.close_shared()


atexit.register(teardown_all)


def install_signal_cleanup() -> None:
    """SIGTERM and SIGHUP (and Ctrl-C, where Python's own handler has it)
    become KeyboardInterrupt in the main thread, so `finally` blocks and
    fixtures run and labs come down. Handlers someone else installed are
    left alone."""
    interrupt_on(signal.SIGTERM, signal.SIGHUP, signal.SIGINT, replace_only_defaults=True)
