"""A Service over several backends with real clients (the `service` lab:
client -- lb -- backend1..backend4, each backend on its own link).

The loader runs as people run it (its own process, services on its command
line, changed on the fly with `backend add|del`), every backend serves
under its own name, so each answer says which backend carried it:
- HTTP through the VIP reaches every backend, and the per-backend counters
  agree with who answered;
- 100 concurrent long-lived TCP connections survive a backend being added
  and another removed, except the removed backend's own, which are reset;
- UDP flows keep their backend across a table change.
The lab's checksum rule judges every frame the captures and kernels saw.
"""
import collections
import concurrent.futures
import contextlib
import http.client
import json
import socket

import pytest

from bpflab.host.netns import entered
from bpflab.host.waits import scaled_timeout, wait_until
from bpflab.lab.topology import VIP, backend_ip
from tests.clitools import keep_reading, run_loader, start_loader, stop_loader, wait_attached

pytestmark = pytest.mark.kernel
THREE = [backend_ip(n) for n in (1, 2, 3)]
FOURTH = backend_ip(4)


def name_of(ip: str) -> str:
    return f"backend{int(ip.split('.')[2])}"


@pytest.fixture
def service_lab(lab_factory):
    lab = lab_factory("service")
    for n in range(1, 5):
        ip, name = backend_ip(n), f"backend{n}"
        lab.serve_all(name, [("http", ip, 8080, "--body", f"{name}\n"), ("tcp-echo", ip, 8007, "--name", name),
                             ("udp-echo", ip, 5353, "--name", name)])
    return lab


@pytest.fixture
def loader(service_lab):
    """xdp_dnat balancing three services over backend1-3, as a process."""
    lb = service_lab.netns("lb")
    specs = [f"{VIP}:{port}/{proto}=" + ",".join(f"{ip}:{bport}" for ip in THREE)
             for port, proto, bport in ((80, "tcp", 8080), (7, "tcp", 8007), (53, "udp", 5353))]
    proc = start_loader("xdp_dnat", "eth0", "--netns", lb, "--interval", "0.2",
                        *[a for spec in specs for a in ("--service", spec)])
    output = None
    try:
        wait_attached(proc)
        output = keep_reading(proc.stdout)
        yield lb
    finally:
        stop_loader(proc, output)


def cli(lb: str, *args: str) -> str:
    """python -m bpflab.loaders.xdp_dnat COMMAND [ACTION] eth0 --netns lb ARGS..."""
    words = 2 if args[0] in ("service", "backend") else 1
    result = run_loader("xdp_dnat", *args[:words], "eth0", "--netns", lb, *args[words:])
    assert result.returncode == 0, result.stderr
    return result.stdout


def packets_per_backend(lb: str, port: int) -> dict[str, int]:
    (svc,) = [s for s in json.loads(cli(lb, "service", "list", "--json")) if s["port"] == port]
    return {name_of(b["ip"]): b["packets"] for b in svc["backends"]}


def http_get(lab) -> str:
    with entered(lab.netns("client")):
        conn = http.client.HTTPConnection(VIP, 80, timeout=scaled_timeout(10))
        try:
            conn.connect()
        except OSError as exc:
            # Which verdict the SYN got says where it went astray.
            stats = run_loader("xdp_dnat", "stats", "eth0", "--netns", lab.netns("lb"), "--json")
            raise AssertionError(f"connect to {VIP}:80 failed ({exc}); lb verdicts: {stats.stdout or stats.stderr}") from exc
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        return resp.read().decode().strip()
    finally:
        conn.close()


def test_http_reaches_every_backend_and_each_is_counted(service_lab, loader):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = collections.Counter(pool.map(lambda _: http_get(service_lab), range(90)))
    assert set(answers) == {name_of(ip) for ip in THREE}, answers
    assert sum(answers.values()) == 90
    # Every connection's packets went to the backend that answered it: each
    # backend that answered k connections was sent at least 4k packets
    # (SYN, ACK, request, ACK of the reply; FIN exchanges add more).
    counted = packets_per_backend(loader, 80)
    assert set(counted) == set(answers)
    for name, k in answers.items():
        assert counted[name] >= 4 * k, (counted, answers)


class Connection:
    """A long-lived TCP connection through the VIP to the echo service."""

    def __init__(self, lab):
        with entered(lab.netns("client")):
            self.sock = socket.create_connection((VIP, 7), timeout=scaled_timeout(10))
        self.backend = self._line()

    def _line(self) -> str:
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionResetError("closed")
            data += chunk
        return data.decode().strip()

    def echo(self, text: str) -> str:
        """Send text, return what came back ("reset" if the connection was)."""
        try:
            self.sock.sendall(f"{text}\n".encode())
            return self._line()
        except (ConnectionResetError, BrokenPipeError):
            return "reset"

    def close(self) -> None:
        self.sock.close()


def test_long_lived_connections_survive_a_backend_added_and_another_removed(service_lab, loader):
    with contextlib.ExitStack() as stack:
        conns = []
        for _ in range(100):
            c = Connection(service_lab)
            stack.callback(c.close)
            conns.append(c)
        by_backend = collections.Counter(c.backend for c in conns)
        assert set(by_backend) == {name_of(ip) for ip in THREE}, by_backend
        assert all(c.echo(f"hello {i}") == f"hello {i}" for i, c in enumerate(conns))

        cli(loader, "backend", "add", f"{VIP}:7/tcp", f"{FOURTH}:8007")
        removed = name_of(THREE[1])
        cli(loader, "backend", "del", f"{VIP}:7/tcp", f"{THREE[1]}:8007")

        after = [c.echo(f"still {i}") for i, c in enumerate(conns)]
        for i, (c, got) in enumerate(zip(conns, after, strict=True)):
            if c.backend == removed:
                assert got == "reset", f"connection {i} of the removed backend got {got!r}"
            else:
                assert got == f"still {i}", f"connection {i} to {c.backend} got {got!r}"
        assert after.count("reset") == by_backend[removed] > 0

        # New connections spread over the new set, the fourth included.
        fresh = []
        for _ in range(60):
            c = Connection(service_lab)
            stack.callback(c.close)
            fresh.append(c.backend)
        assert set(fresh) == {name_of(ip) for ip in (THREE[0], THREE[2], FOURTH)}, collections.Counter(fresh)


def test_udp_flows_keep_their_backend(service_lab, loader):
    with entered(service_lab.netns("client")):
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(30)]
    try:
        def ask(s, text):
            s.send(text.encode())
            return s.recv(2048).decode().split(":", 1)

        first = []
        for i, s in enumerate(socks):
            s.settimeout(scaled_timeout(3))
            s.connect((VIP, 53))  # replies must come from the VIP, or a connected socket drops them
            name, echoed = ask(s, f"q{i}")
            assert echoed == f"q{i}"
            first.append(name)
        assert set(first) == {name_of(ip) for ip in THREE}
        added = json.loads(cli(loader, "backend", "add", f"{VIP}:53/udp", f"{FOURTH}:5353@2", "--json"))
        assert added["added"] == {"ip": FOURTH, "port": 5353, "weight": 2}
        assert [(b["ip"], b["weight"]) for b in added["service"]["backends"]] == [(ip, 1) for ip in THREE] + [(FOURTH, 2)]
        assert [ask(s, "again")[0] for s in socks] == first
    finally:
        for s in socks:
            s.close()


def test_the_loader_follows_a_backend_behind_a_new_interface(service_lab, loader):
    """backend4 sits behind the lb's eth4: the running loader attaches the
    return path there once a service names it, so its replies come back."""
    cli(loader, "service", "add", f"{VIP}:8000/tcp={FOURTH}:8007")

    def answered():
        with contextlib.suppress(OSError), entered(service_lab.netns("client")), \
                socket.create_connection((VIP, 8000), timeout=1) as s:
            return s.recv(64) == b"backend4\n"
        return False

    wait_until(answered, timeout=10, what="backend4 to answer through the VIP")


def k8s_web(*ips: str, terminating: tuple[str, ...] = ()) -> dict:
    """A Service and its EndpointSlice, as kubectl get -o json prints them."""
    endpoints = [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False}}
                 for ip in ips]
    endpoints += [{"addresses": [ip], "conditions": {"ready": False, "serving": True, "terminating": True}}
                  for ip in terminating]
    return {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"clusterIP": VIP, "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {"name": "web-abcde", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
         "endpoints": endpoints, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}


def test_kubernetes_objects_applied_to_a_running_instance(service_lab, loader, tmp_path):
    (tmp_path / "web.json").write_text(json.dumps(k8s_web(THREE[0], THREE[2], terminating=(THREE[1],))))
    out = cli(loader, "apply", "-f", str(tmp_path / "web.json"))
    assert out.splitlines() == [
        f"removed {VIP}:7/tcp", f"removed {VIP}:53/udp",
        f"changed {VIP}:80/tcp (default/web:http): {THREE[1]}:8080 weight 1->0",
        "0 added, 2 removed, 1 changed, 0 unchanged"]
    answers = collections.Counter(http_get(service_lab) for _ in range(30))
    assert set(answers) == {name_of(THREE[0]), name_of(THREE[2])}  # the terminating one takes no new flow
    # A malformed object: one line naming it, exit 2, nothing changed.
    bad = k8s_web(THREE[0])
    bad["items"][1]["endpoints"][0]["addresses"] = ["10.244.1.500"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    before = cli(loader, "service", "list", "--json")
    result = run_loader("xdp_dnat", "apply", "eth0", "--netns", loader, "-f", str(tmp_path / "bad.json"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "EndpointSlice default/web-abcde: endpoints[0].addresses[0] '10.244.1.500' is not an IPv4 address" \
        in result.stderr
    assert json.loads(cli(loader, "service", "list", "--json"))[0]["backends"] == json.loads(before)[0]["backends"]
    # YAML, as kubectl get -o yaml prints it, and --json.
    import yaml

    (tmp_path / "web.yaml").write_text(yaml.safe_dump(k8s_web(*THREE)))
    report = json.loads(cli(loader, "apply", "-f", str(tmp_path / "web.yaml"), "--json"))
    assert report["changed"] == [f"{VIP}:80/tcp (default/web:http): {THREE[1]}:8080 weight 0->1"]
