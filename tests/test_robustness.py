"""Faults and bad input through the real command lines: one clear line,
exit status 2 (1 when the interface vanishes), nothing left attached."""
import json
import signal

import pytest
from pyroute2 import IPRoute

from bpflab.host.instances import PIN_ROOT
from bpflab.host.netns import entered
from bpflab.host.waits import read_line, scaled_timeout, wait_until
from bpflab.lab.frames import towards_peer
from bpflab.lab.topology import VIP
from bpflab.libbpf import BpfObject
from bpflab.libbpf.xdp import attach_legacy
from bpflab.loaders.interfaces import query as xdp_query
from bpflab.loaders.objects import object_path
from bpflab.loaders.registry import PROGRAMS
from tests.clitools import assert_one_line_error, run_loader, start_loader, wait_attached

pytestmark = pytest.mark.kernel
LOADERS = list(PROGRAMS)


def nothing_attached(lab):
    for node, ifname in (("right", "eth0"), ("left", "eth0")):
        assert xdp_query(ifname, lab.netns(node)).prog_id == 0, f"{node}/{ifname} still has XDP"
    assert not any(p.name.find(lab.prefix) >= 0 for p in PIN_ROOT.glob("*")) if PIN_ROOT.exists() else True


BAD_INPUT = {
    "unknown interface": (lambda lab, tmp: ["nosuch0", "--netns", lab.netns("right")],
                          "interface 'nosuch0' does not exist in network namespace"),
    "unknown namespace": (lambda lab, tmp: ["eth0", "--netns", "bpflab-nowhere"],
                          "network namespace 'bpflab-nowhere' does not exist"),
    "object missing": (lambda lab, tmp: ["eth0", "--netns", lab.netns("right"), "--object", str(tmp / "gone.bpf.o")],
                       "not found"),
    "object corrupt": (lambda lab, tmp: ["eth0", "--netns", lab.netns("right"), "--object", str(corrupt(tmp))],
                       "cannot open BPF object"),
    "unknown flag": (lambda lab, tmp: ["eth0", "--netns", lab.netns("right"), "--frobnicate"],
                     "unrecognized arguments: --frobnicate"),
}


def corrupt(tmp):
    path = tmp / "corrupt.bpf.o"
    path.write_bytes(b"\x7fELF" + bytes(range(256)) * 4)
    return path


@pytest.fixture(scope="module")
def shared_pair(module_lab_factory):
    """One lab for the bad-input cases: each checks that nothing got attached."""
    return module_lab_factory("pair")


@pytest.mark.harness
@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input(shared_pair, tmp_path, loader, case):
    make_args, fragment = BAD_INPUT[case]
    result = run_loader(loader, *make_args(shared_pair, tmp_path))
    assert_one_line_error(result, fragment)
    nothing_attached(shared_pair)


@pytest.mark.harness
@pytest.mark.parametrize("loader", LOADERS)
def test_not_root(shared_pair, loader):
    result = run_loader(loader, "eth0", "--netns", shared_pair.netns("right"), unprivileged=True)
    assert_one_line_error(result, "needs root (CAP_BPF and CAP_NET_ADMIN)")
    nothing_attached(shared_pair)


SPEC_ERRORS = [
    ("10.96.0.10:80/tcp", "malformed service '10.96.0.10:80/tcp' (want VIP:PORT/PROTO=BACKEND:PORT[,BACKEND:PORT...])"),
    ("10.96.0.10:80/tcp=", "no backend in '10.96.0.10:80/tcp='"),
    ("10.96.0.10:80/tcp=10.244.1.5:80,10.244.1.5:80", "backend 10.244.1.5:80 twice in"),
    ("10.96.0.10:80/tcp=10.244.1.5:80@0", "invalid weight '0' in '10.96.0.10:80/tcp=10.244.1.5:80@0' (want 1-65535)"),
    ("10.96.0.10:80/tcp=10.244.1.5:80@x", "invalid weight 'x'"),
    ("10.96.0.10:80/tcp=10.244.1.5:70000", "backend port 70000 out of range in '10.96.0.10:80/tcp=10.244.1.5:70000'"),
    ("10.96.0.10:0/tcp=10.244.1.5:80", "service port 0 out of range"),
    ("10.96.0.300:80/tcp=10.244.1.5:80", "invalid service address '10.96.0.300'"),
    ("10.96.0.10:80/tcp=backend:80", "invalid backend address 'backend'"),
    ("10.96.0.10:80/sctp=10.244.1.5:80", "unknown protocol 'sctp'"),
    ("10.96.0.10:http/tcp=10.244.1.5:80", "invalid service port 'http'"),
]


@pytest.mark.harness
@pytest.mark.parametrize("spec,message", SPEC_ERRORS, ids=[s for s, _ in SPEC_ERRORS])
def test_malformed_service_specs(dnat_lab, spec, message):
    result = run_loader("xdp_dnat", "eth0", "--netns", dnat_lab.netns("lb"), "--service", spec)
    assert_one_line_error(result, message)
    assert xdp_query("eth0", dnat_lab.netns("lb")).prog_id == 0


def start_and_wait(name, *args):
    proc = start_loader(name, *args)
    wait_attached(proc)
    return proc


def open_connection(lab) -> bool:
    """A client's SYN to the service: whether xdp_dnat carried it to the
    backend (and so recorded the connection the reply belongs to)."""
    from scapy.layers.inet import TCP

    syn = towards_peer(lab.topology, "client", dst=VIP) / TCP(sport=5555, dport=80, flags="S")
    with lab.capture("backend", "eth0", lambda p: TCP in p and p[TCP].sport == 5555) as cap:
        lab.send("client", "eth0", syn)
        return bool(cap.wait(1, timeout=1))


def reply_comes_back(lab) -> bool:
    """Whether the backend's reply of that connection reaches the client
    (only the return path can carry it: the lb does not forward from its
    backend side)."""
    from scapy.layers.inet import TCP

    client = lab.endpoint("client", "eth0")
    reply = towards_peer(lab.topology, "backend", dst=client.ip) / TCP(sport=8080, dport=5555, flags="SA")
    with lab.capture("client", "eth0", lambda p: TCP in p and p[TCP].dport == 5555) as cap:
        lab.send("backend", "eth0", reply)
        return bool(cap.wait(1, timeout=1))


@pytest.mark.since_kernel("tcx")  # older kernels keep a classic tc filter after SIGKILL
def test_sigkill_takes_the_attachments_with_it_and_the_next_run_says_so(dnat_lab):
    lb = dnat_lab.netns("lb")
    proc = start_and_wait("xdp_dnat", "eth0", "--netns", lb)
    assert open_connection(dnat_lab) and reply_comes_back(dnat_lab)
    proc.kill()
    proc.wait(scaled_timeout(10))
    wait_until(lambda: xdp_query("eth0", lb).prog_id == 0, timeout=2, what="the killed loader's XDP link to go")
    assert not reply_comes_back(dnat_lab)
    again = start_loader("xdp_dnat", "eth0", "--netns", lb)
    try:
        wait_attached(again)
        assert read_line(again.stderr, timeout=10, what="xdp_dnat's second line") == (
            "xdp_dnat: removed the pins of an earlier instance that died\n")
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=scaled_timeout(10))
    assert again.returncode == 143


def test_a_surviving_attachment_is_reported_and_force_replaces_it(pair_lab):
    ns = pair_lab.netns("right")
    with BpfObject(object_path("hello")) as obj, entered(ns):
        idx = pair_lab.ifindex("right", "eth0")
        # A legacy netlink attachment outlives the process that made it.
        attach_legacy(obj.program("hello").fd, idx, "generic")
    legacy = xdp_query("eth0", ns)
    assert legacy.mode == "generic"
    result = run_loader("packet_counter", "eth0", "--netns", ns, "--count", "1", "--interval", "0.1")
    assert_one_line_error(result, f"interface 'eth0' already has an XDP program attached (prog id {legacy.prog_id}, "
                                  "generic mode)")
    forced = run_loader("packet_counter", "eth0", "--netns", ns, "--count", "1", "--interval", "0.1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert xdp_query("eth0", ns).prog_id == 0  # replaced, then removed on exit


def test_two_loaders_on_one_interface(pair_lab, dnat_lab):
    ns = pair_lab.netns("right")
    first = start_and_wait("hello", "eth0", "--netns", ns)
    try:
        second = run_loader("packet_counter", "eth0", "--netns", ns)
        assert_one_line_error(second, "interface 'eth0' already has an XDP program attached")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=scaled_timeout(10))
    lb = dnat_lab.netns("lb")
    first = start_and_wait("xdp_dnat", "eth0", "--netns", lb)
    try:
        second = run_loader("xdp_dnat", "eth0", "--netns", lb)
        assert_one_line_error(second, f"xdp_dnat on eth0 in netns {lb} is already running (pid {first.pid})")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=scaled_timeout(10))


@pytest.mark.parametrize("loader,args", [("hello", []), ("mytcpdump", []),
                                         ("packet_counter", ["--interval", "0.5"]), ("xdp_dnat", [])])
def test_the_interface_deleted_under_a_running_loader(lab_factory, loader, args):
    lab = lab_factory("dnat")
    lb = lab.netns("lb")
    proc = start_and_wait(loader, "eth0", "--netns", lb, *args)
    with entered(lb), IPRoute() as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname="eth0")[0])
    out, err = proc.communicate(timeout=scaled_timeout(15))
    assert proc.returncode == 1, out + err
    assert err.splitlines()[-1] == f"{loader}: interface 'eth0' was deleted while attached; exiting"
    assert "Traceback" not in err


def test_what_the_maps_have_no_room_for_is_one_line_naming_its_flag(dnat_lab):
    """More services than --max-services, more backends than the slots
    (--max-backends) or than a table holds (--max-service-backends): one
    line naming the limit and its flag, exit 2, nothing changed."""
    lb = dnat_lab.netns("lb")
    proc = start_and_wait("xdp_dnat", "eth0", "--netns", lb, "--max-services", "3", "--max-backends", "4",
                          "--max-service-backends", "2")  # its default service takes slot 0
    try:
        def ok(*args):
            result = run_loader("xdp_dnat", *args[:2], "eth0", "--netns", lb, *args[2:])
            assert result.returncode == 0, result.stderr

        def refused(*args):
            return run_loader("xdp_dnat", *args[:2], "eth0", "--netns", lb, *args[2:])

        ok("service", "add", "10.96.0.11:80/tcp=10.244.1.6:80")
        assert_one_line_error(refused("service", "add", "10.96.0.11:80/tcp=10.244.1.6:80,10.244.1.7:80,10.244.1.8:80"),
                              "10.96.0.11:80/tcp has 3 backends: each table has room for 2 (--max-service-backends)")
        ok("backend", "add", "10.96.0.11:80/tcp", "10.244.1.8:80")
        ok("backend", "add", "10.96.0.10:80/tcp", "10.244.1.9:80")
        assert_one_line_error(refused("service", "add", "10.96.0.12:80/tcp=10.244.1.11:80", "10.96.0.13:80/tcp=10.244.1.12:80"),
                              "4 services do not fit the service map (3; --max-services)")
        assert_one_line_error(refused("service", "add", "10.96.0.12:80/tcp=10.244.1.11:80"),
                              "1 new backend does not fit the free backend slots (0 of 4; --max-backends)")
        listed = json.loads(run_loader("xdp_dnat", "service", "list", "eth0", "--netns", lb, "--json").stdout)
        assert [(s["vip"], [b["slot"] for b in s["backends"]]) for s in listed] == [
            ("10.96.0.10", [0, 3]), ("10.96.0.11", [1, 2])]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=scaled_timeout(10))


@pytest.mark.harness
def test_service_commands_without_a_running_instance(dnat_lab):
    result = run_loader("xdp_dnat", "service", "list", "eth0", "--netns", dnat_lab.netns("lb"))
    assert_one_line_error(result, f"no xdp_dnat on eth0 in netns {dnat_lab.netns('lb')} is running")
