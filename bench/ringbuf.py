"""ringbuf_events_per_s: events per second the Python mytcpdump consumer
takes out of the ring (decoded into Event objects), while one thread
produces them with test-run as fast as it can; and how many the program
had to drop because the ring was full."""
from __future__ import annotations

import threading
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bpflab.libbpf import BpfObject
from bpflab.loaders.mytcpdump import DEFAULT_RING_BYTES, open_stream, ring_sizer
from bpflab.loaders.objects import object_path

SECONDS = 3.0
BATCH = 20_000


def measure(seconds: float = SECONDS) -> dict:
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.1.2", dst="10.96.0.10") / UDP(sport=4000, dport=53) / bytes(18))
    with BpfObject(object_path("mytcpdump"), load=False) as obj:
        ring_sizer(DEFAULT_RING_BYTES)(obj)
        obj.load()
        stream = open_stream(obj)
        produced = 0
        stop = threading.Event()

        def produce():
            nonlocal produced
            prog = obj.program("mytcpdump")
            while not stop.is_set():
                prog.test_run(frame, repeat=BATCH, out_size=0)
                produced += BATCH

        producer = threading.Thread(target=produce)
        consumed = 0
        start = time.perf_counter()
        producer.start()
        try:
            for _event in stream.events(timeout=0.5):
                consumed += 1
                if consumed % 1000 == 0 and time.perf_counter() - start >= seconds:
                    break
        finally:
            stop.set()
            producer.join()
        elapsed = time.perf_counter() - start
        consumed += len(stream.drain())
        dropped = stream.drops()
        stream.close()
    return {"events_per_s": round(consumed / elapsed), "produced": produced, "consumed": consumed,
            "dropped": dropped, "ring_bytes": DEFAULT_RING_BYTES}
