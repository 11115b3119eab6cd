"""Real clients through the VIP: xdp_dnat forward + tc return path carry
TCP and UDP between a client and a backend, and nothing else can."""
import concurrent.futures
import hashlib
import http.client
import os
import socket
import threading

import pytest

from loaders.libbpf import entered
from loaders.xdp_dnat import XdpDnat
from tests.dnat_frames import BACKEND_IP, VIP

pytestmark = pytest.mark.kernel
BODY = "hello through the VIP\n"
SERVICES = [f"{VIP}:80/tcp={BACKEND_IP}:8080", f"{VIP}:7/tcp={BACKEND_IP}:8007", f"{VIP}:53/udp={BACKEND_IP}:5353"]


@pytest.fixture
def service_lab(dnat_lab):
    dnat_lab.serve("backend", "http", BACKEND_IP, 8080, "--body", BODY)
    dnat_lab.serve("backend", "tcp-echo", BACKEND_IP, 8007)
    dnat_lab.serve("backend", "udp-echo", BACKEND_IP, 5353)
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


def assert_no_checksum_errors(lab):
    for node in ("client", "backend"):
        snmp = lab.snmp(node)
        assert (snmp["Tcp"]["InCsumErrors"], snmp["Udp"]["InCsumErrors"]) == (0, 0), node


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
    assert_no_checksum_errors(service_lab)


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
    assert_no_checksum_errors(service_lab)


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
    assert_no_checksum_errors(service_lab)


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
