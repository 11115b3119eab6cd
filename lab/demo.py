"""The README's demo: every program at work in throwaway labs, then
everything removed. Each step prints what it shows."""
from __future__ import annotations

import itertools

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from loaders.hello import Hello

from . import builder
from .topology import pair


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def demo_hello() -> None:
    banner("hello: an XDP program that traces every frame")
    with builder.build(pair()) as lab:
        left, right = lab.endpoint("left", "eth0"), lab.endpoint("right", "eth0")
        print(f"lab: {lab.netns('left')} ({left.ip}) <-> {lab.netns('right')} ({right.ip})")
        with Hello("eth0", netns=lab.netns("right"), mode="native") as hello:
            print(f"attached hello to {hello.where()}")
            frames = [Ether(src=left.mac, dst=right.mac) / IP(src=left.ip, dst=right.ip) / UDP(dport=7000 + i)
                      / bytes(20 * i) for i in range(1, 4)]
            lab.send("left", "eth0", frames)
            print(f"sent {len(frames)} UDP frames from left; hello's trace lines:")
            for line in itertools.islice(hello.lines(timeout=1), len(frames)):
                print(f"  {line.strip()}")
        print("detached hello")
    print("lab removed")


def main() -> int:
    demo_hello()
    return 0
