"""The README's demo: every program at work in throwaway labs, through its
real command line, then everything removed."""
from __future__ import annotations

import itertools
import subprocess
import sys

from scapy.layers.inet import ICMP, TCP, UDP

from bpflab.host.processes import spawn, stop
from bpflab.host.waits import read_line, scaled_timeout
from bpflab.lab import builder
from bpflab.lab.frames import towards_peer
from bpflab.lab.topology import backend_ip, dnat, pair, service
from bpflab.loaders.hello import Hello


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def mixed_traffic(lab) -> list:
    base = towards_peer(lab.topology, "left")
    other = towards_peer(lab.topology, "left", src="198.51.100.9")
    return ([base / ICMP() / b"ping"] * 2 + [base / TCP(sport=40000, dport=80, flags="S")] * 3
            + [base / UDP(sport=5353, dport=53) / b"query"] * 4 + [other / UDP(sport=9, dport=9) / b"other"])


def run_loader_cli(lab, module: str, *args: str) -> None:
    """Start `python -m bpflab.loaders.MODULE` in the lab, send traffic once it is
    attached, and show what it prints."""
    argv = [sys.executable, "-u", "-m", f"bpflab.loaders.{module}", "eth0", "--netns", lab.netns("right"), *args]
    print(f"$ python -m bpflab.loaders.{module} eth0 --netns {lab.netns('right')} {' '.join(args)}", flush=True)
    proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        attached = read_line(proc.stderr, timeout=30, what=f"{module}'s 'attached' line")
        if "attached" not in attached:
            raise RuntimeError(f"{module} did not start: {attached}{proc.stderr.read()}")
        print(attached, end="")
        lab.send("left", "eth0", mixed_traffic(lab))
        out, err = proc.communicate(timeout=scaled_timeout(30))
    finally:
        stop(proc)
    print(out, end="")
    print(err, end="")


def demo_hello(lab) -> None:
    banner("hello: an XDP program that traces every frame")
    with Hello("eth0", netns=lab.netns("right"), mode="native") as hello:
        print(f"attached hello to {hello.where()}")
        frames = [towards_peer(lab.topology, "left") / UDP(dport=7000 + i) / bytes(20 * i) for i in range(1, 4)]
        lab.send("left", "eth0", frames)
        print(f"sent {len(frames)} UDP frames from left; hello's trace lines:")
        for line in itertools.islice(hello.lines(timeout=1), len(frames)):
            print(f"  {line.strip()}")
    print("detached hello")


def demo_dnat() -> None:
    banner("xdp_dnat: a Service VIP carried by XDP (forward) and tc (return)")
    with builder.build(dnat()) as lab:
        lb = lab.netns("lb")
        print(f"lab: client {lab.netns('client')} (10.0.1.2) -> lb {lb} -> backend {lab.netns('backend')} "
              f"(10.244.1.5); the lb has no route to the VIP 10.96.0.10")
        server = lab.serve("backend", "http", "10.244.1.5", "8080", "--body", "hello from the backend, via the VIP\n")
        argv = [sys.executable, "-u", "-m", "bpflab.loaders.xdp_dnat", "eth0", "--netns", lb, "--mode", "native",
                "--interval", "1"]
        print(f"$ python -m bpflab.loaders.xdp_dnat eth0 --netns {lb} --mode native --interval 1", flush=True)
        loader = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            while line := read_line(loader.stdout, timeout=30, what="xdp_dnat's start-up lines"):
                print(line, end="", flush=True)
                if "change them with" in line:
                    break
            print("\n$ curl -s http://10.96.0.10/      (in the client)")
            print(lab.run("client", ["curl", "-s", "--max-time", "5", "http://10.96.0.10/"]).stdout, end="")
            print("\n$ python3 -c 'http.client ... GET /'  (in the client)")
            script = ("import http.client; c = http.client.HTTPConnection('10.96.0.10', 80, timeout=5); "
                      "c.request('GET', '/'); r = c.getresponse(); print(r.status, r.reason, r.read().decode(), end='')")
            print(lab.run("client", [sys.executable, "-c", script]).stdout, end="")
            print(f"\n$ python -m bpflab.loaders.xdp_dnat stats eth0 --netns {lb}")
            stats = subprocess.run([sys.executable, "-m", "bpflab.loaders.xdp_dnat", "stats", "eth0", "--netns", lb],
                                   capture_output=True, text=True, timeout=scaled_timeout(30))
            print(stats.stdout + stats.stderr, end="")
        finally:
            loader.terminate()
            out, _ = loader.communicate(timeout=scaled_timeout(10))
            print("\n(the loader, stopped with SIGTERM:)")
            print(out, end="")
            server.terminate()
    print("lab removed")


def demo_service() -> None:
    banner("xdp_dnat balancing: one VIP over three backends (Maglev), flows pinned")
    with builder.build(service()) as lab:
        lb = lab.netns("lb")
        backends = [backend_ip(n) for n in (1, 2, 3)]
        servers = [lab.serve(f"backend{n}", "http", ip, "8080", "--body", f"backend{n}\n")
                   for n, ip in enumerate(backends, 1)]
        spec = "10.96.0.10:80/tcp=" + ",".join(f"{ip}:8080" for ip in backends)
        print(f"lab: client -> lb {lb} -> backend1..3 ({', '.join(backends)}), each on its own link")
        print(f"$ python -m bpflab.loaders.xdp_dnat eth0 --netns {lb} --service {spec}", flush=True)
        loader = spawn([sys.executable, "-u", "-m", "bpflab.loaders.xdp_dnat", "eth0", "--netns", lb, "--service",
                        spec, "--interval", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def manage(*args: str) -> None:
            print(f"$ python -m bpflab.loaders.xdp_dnat {' '.join(args[:2])} eth0 --netns {lb} {' '.join(args[2:])}")
            words = 2 if args[0] in ("service", "backend") else 1
            done = subprocess.run([sys.executable, "-m", "bpflab.loaders.xdp_dnat", *args[:words], "eth0", "--netns",
                                   lb, *args[words:]], capture_output=True, text=True, timeout=scaled_timeout(30))
            print(done.stdout + done.stderr, end="")

        try:
            while line := read_line(loader.stdout, timeout=30, what="xdp_dnat's start-up lines"):
                print(line, end="", flush=True)
                if "change them with" in line:
                    break
            script = ("import collections, http.client\n"
                      "seen = collections.Counter()\n"
                      "for _ in range(30):\n"
                      "    c = http.client.HTTPConnection('10.96.0.10', 80, timeout=5)\n"
                      "    c.request('GET', '/'); seen[c.getresponse().read().decode().strip()] += 1; c.close()\n"
                      "print(dict(sorted(seen.items())))")
            print("\n$ 30 HTTP GETs to http://10.96.0.10/ from the client, each a new connection; who answered:")
            print(lab.run("client", [sys.executable, "-c", script]).stdout, end="")
            manage("service", "list")
            manage("backend", "del", "10.96.0.10:80/tcp", f"{backends[1]}:8080")
            print("$ the same 30 GETs again:")
            print(lab.run("client", [sys.executable, "-c", script]).stdout, end="")
        finally:
            loader.terminate()
            loader.communicate(timeout=scaled_timeout(10))
            for server in servers:
                server.terminate()
    print("lab removed")


def main() -> int:
    with builder.build(pair()) as lab:
        left, right = lab.endpoint("left", "eth0"), lab.endpoint("right", "eth0")
        print(f"lab: {lab.netns('left')} ({left.ip}) <-> {lab.netns('right')} ({right.ip})")
        demo_hello(lab)
        banner("packet_inspect: source, destination and protocol of each IPv4 packet")
        run_loader_cli(lab, "packet_inspect", "--count", "10")
        banner("packet_counter: packets per IP protocol (exact across CPUs)")
        run_loader_cli(lab, "packet_counter", "--interval", "1", "--count", "1")
        banner("connection_tracker: packets and bytes per {src, dst, protocol}")
        run_loader_cli(lab, "connection_tracker", "--interval", "1", "--count", "1")
        banner("mytcpdump: a live ring-buffer stream, one line per packet")
        run_loader_cli(lab, "mytcpdump", "--count", "10")
    print("\nlab removed")
    demo_dnat()
    demo_service()
    return 0
