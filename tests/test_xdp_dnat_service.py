"""Real clients through the VIP: xdp_dnat forward + tc return path carry
TCP and UDP between a client and a backend, and nothing else can.

The dnat lab makes every kernel on the way judge checksums: the backend's
replies reach the return path partial (TX offload on at the backend) and are
completed in software on the lb's client side, so a reply whose pseudo-header
sum the return path got wrong is counted by the client's kernel. The lab's
checksum rule (lab/pytest_plugin.py) fails any test here whose nodes counted
a checksum error or whose captures hold a bad checksum."""
import concurrent.futures
import hashlib
import http.client
import os
import socket
import threading

import pytest
from scapy.layers.inet import IP, UDP

from bpflab.host.netns import entered
from bpflab.host.waits import settle
from bpflab.lab.checksums import assert_checksums, verify_frame
from bpflab.loaders.xdp_dnat import XdpDnat
from tests.bpfsrc import compile_variant
from tests.xdp_dnat_frames import BACKEND_IP, VIP

pytestmark = pytest.mark.kernel
BODY = "hello through the VIP\n"
SERVICES = [f"{VIP}:80/tcp={BACKEND_IP}:8080", f"{VIP}:7/tcp={BACKEND_IP}:8007", f"{VIP}:53/udp={BACKEND_IP}:5353"]


@pytest.fixture
def service_lab(dnat_lab):
    dnat_lab.serve_all("backend", [("http", BACKEND_IP, 8080, "--body", BODY), ("tcp-echo", BACKEND_IP, 8007),
                                   ("udp-echo", BACKEND_IP, 5353)])
    return dnat_lab


def http_get(lab, timeout=10.0) -> tuple[int, str]:
    """GET http://VIP/ with Python's own client, from inside the client node."""
    with entered(lab.netns("client")):
        conn = http.client.HTTPConnection(VIP, 80, timeout=timeout)
        conn.connect()  # the socket is made here, in the client's namespace
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_http_sequential_and_concurrent(service_lab, attach, mode):
    dnat = attach(XdpDnat, "eth0", netns=service_lab.netns("lb"), mode=mode, services=SERVICES)
    assert sorted(dnat.return_links) == ["eth1"]
    for _ in range(20):
        assert http_get(service_lab) == (200, BODY)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: http_get(service_lab), range(64)))
    assert results == [(200, BODY)] * 64
    curl = service_lab.run("client", ["curl", "-s", "--max-time", "5", f"http://{VIP}/"])
    assert (curl.returncode, curl.stdout) == (0, BODY)
    v = dnat.verdicts()
    assert v["rewritten"] == v["redirected"] > 0 and v["reply_rewritten"] > 0
    assert v["fib_fail"] == v["malformed"] == 0


def tcp_connect(lab, port=7, timeout=10.0) -> socket.socket:
    with entered(lab.netns("client")):
        return socket.create_connection((VIP, port), timeout=timeout)


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_tcp_echo_far_above_the_mss_and_reconnects(service_lab, attach, mode):
    attach(XdpDnat, "eth0", netns=service_lab.netns("lb"), mode=mode, services=SERVICES)
    payload = os.urandom(2 * 1024 * 1024)
    for _ in range(3):  # close and reopen
        with tcp_connect(service_lab) as s:
            # Write and read at once: an echo client that only writes first
            # deadlocks as soon as both sides' buffers are full.
            def send_all(sock=s):
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)

            sender = threading.Thread(target=send_all)
            sender.start()
            got = bytearray()
            while chunk := s.recv(1 << 16):
                got += chunk
            sender.join()
        assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_udp_request_response(service_lab, attach, mode):
    attach(XdpDnat, "eth0", netns=service_lab.netns("lb"), mode=mode, services=SERVICES)
    with entered(service_lab.netns("client")):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(3)
        s.connect((VIP, 53))  # replies must come from the VIP, or a connected socket drops them
        for size in (1, 100, 1400):
            msg = os.urandom(size)
            s.send(msg)
            assert s.recv(65535) == msg


def test_only_bpf_carries_service_traffic(service_lab, attach):
    # Without the programs the lb's kernel cannot reach the VIP at all.
    with pytest.raises(OSError):
        tcp_connect(service_lab, timeout=1).close()
    # The forward path alone: replies never find their way back.
    with attach(XdpDnat, "eth0", netns=service_lab.netns("lb"), mode="native", services=SERVICES,
                return_path=False):
        with pytest.raises(OSError):
            tcp_connect(service_lab, timeout=1).close()
    with attach(XdpDnat, "eth0", netns=service_lab.netns("lb"), mode="native", services=SERVICES):
        tcp_connect(service_lab).close()


def test_arp_and_unrelated_traffic_still_work(service_lab, attach):
    attach(XdpDnat, "eth0", netns=service_lab.netns("lb"), mode="native", services=SERVICES)
    # Forget the lb's MAC: the client must resolve it with ARP through XDP.
    service_lab.run("client", ["ip", "neigh", "del", "10.0.1.1", "dev", "eth0"], check=True)
    ping = service_lab.run("client", ["ping", "-c", "2", "-W", "2", "10.0.1.1"])
    assert ping.returncode == 0, ping.stdout
    neigh = service_lab.run("client", ["ip", "neigh", "show", "10.0.1.1"]).stdout
    assert "02:00:00:00:02:01" in neigh and "PERMANENT" not in neigh
    assert http_get(service_lab) == (200, BODY)


def udp_exchange(lab, port: int, message: bytes, timeout: float = 3.0) -> bytes | None:
    """Send `message` to VIP:port from the client; the reply, or None."""
    with entered(lab.netns("client")):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(timeout)
        s.connect((VIP, port))
        s.send(message)
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def is_udp_from_vip(p) -> bool:
    return UDP in p and p[IP].src == VIP


def test_replies_reach_the_return_path_partial_and_the_client_complete(service_lab, attach):
    """The setting this file relies on, checked: backend replies arrive at
    the lb with CHECKSUM_PARTIAL, and reach the client completed, valid."""
    attach(XdpDnat, "eth0", netns=service_lab.netns("lb"), mode="native", services=SERVICES)
    with service_lab.capture("lb", "eth1", lambda p: UDP in p and p[IP].src == BACKEND_IP) as at_lb, \
            service_lab.capture("client", "eth0", is_udp_from_vip) as at_client:
        assert udp_exchange(service_lab, 53, b"partial?") == b"partial?"
        assert at_lb.wait(1) and at_client.wait(1)
    assert at_lb.partial == [True]
    assert at_client.partial == [False]
    assert_checksums([at_client.frames[0]])


def test_a_backend_replying_without_udp_checksum(dnat_lab, attach):
    dnat_lab.serve("backend", "udp-echo", BACKEND_IP, 5353, "--no-checksum")
    attach(XdpDnat, "eth0", netns=dnat_lab.netns("lb"), mode="native", services=SERVICES)
    with dnat_lab.capture("client", "eth0", is_udp_from_vip) as cap:
        assert udp_exchange(dnat_lab, 53, b"no checksum, please") == b"no checksum, please"
        got = cap.wait(1)
    assert got[0][UDP].chksum == 0  # "none" stayed none through the rewrite


# What the return path would be without each checksum rule: the lab must
# catch both (measured first: docs/explanation/checksums.md), or it could not catch them in
# the real program either.
BROKEN_RETURN_PATHS = {
    "without BPF_F_PSEUDO_HDR": ({"l4_flags | BPF_F_PSEUDO_HDR | 4": "l4_flags | 4"}, "udp-echo", ()),
    "without BPF_F_MARK_MANGLED_0": ({"l4_flags = BPF_F_MARK_MANGLED_0;": "l4_flags = 0;"}, "udp-echo",
                                     ("--no-checksum",)),
}


@pytest.mark.expect_bad_checksums("the broken return paths must produce them")
@pytest.mark.parametrize("broken", list(BROKEN_RETURN_PATHS))
def test_the_client_rejects_what_a_broken_return_path_sends(dnat_lab, attach, tmp_path, broken):
    replacements, server, server_args = BROKEN_RETURN_PATHS[broken]
    variant = compile_variant(tmp_path, "xdp_dnat", replacements)
    dnat_lab.serve("backend", server, BACKEND_IP, 5353, *server_args)
    attach(XdpDnat, "eth0", netns=dnat_lab.netns("lb"), mode="native", services=SERVICES, obj=variant)
    with dnat_lab.capture("client", "eth0", is_udp_from_vip) as cap:
        assert udp_exchange(dnat_lab, 53, b"is this checked?", timeout=1) is None
        got = cap.wait(1)
    assert settle(lambda: dnat_lab.snmp("client")["Udp"]["InCsumErrors"], 1) == 1
    # The capture shows it too: the reply reached the client with a wrong UDP checksum.
    assert [f.layer for f in verify_frame(cap.frames[0]).problems] == ["UDP"], got[0].show(dump=True)
