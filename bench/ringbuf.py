"""The ring consumers, all fed by mytcpdump's program through test-run (one
producer thread in the kernel, no interface needed), measured in one run:

- ringbuf_events_per_s: the Python consumer (EventStream.batches: records
  read from the ring's mapped pages a batch at a time, each batch decoded
  whole by decode_columns) while the producer goes as fast as it can;
- c_consumer_events_per_s: the same, read by a minimal C consumer (libbpf
  ring_buffer__poll with a counting callback: bench/c/ring_count.c);
- offered_rate_drops: the Python consumer at a fixed offered rate
  (500k events/s for 5 s); the goal is no drop at all;
- cli_json_events_per_s: `mytcpdump --json > file` on a lab interface, fed
  at a fixed rate by the live-frames generator: lines written and drops.

Every figure checks consumed + dropped = produced: an event is never lost
without being counted."""
from __future__ import annotations

import contextlib
import ctypes
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bpflab.host.netns import entered
from bpflab.lab import builder, pair
from bpflab.libbpf import BpfObject, xdp_md
from bpflab.libbpf.testrun import BPF_F_TEST_XDP_LIVE_FRAMES
from bpflab.loaders.mytcpdump import DEFAULT_RING_BYTES, decode_columns, open_stream, ring_sizer
from bpflab.loaders.objects import BUILD_DIR, object_path

SECONDS = 3.0
BATCH = 1_000_000  # per test-run call: each call with repeat > 1 also costs ~17 ms (the kernel switches its XDP dispatcher to the program and back)
OFFERED_RATE, OFFERED_SECONDS = 500_000, 5.0
CLI_RATE, CLI_SECONDS = 300_000, 3.0
TICK_S = 0.01  # a fixed rate is offered in bursts of rate * TICK_S events


def udp_frame() -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.1.2", dst="10.96.0.10")
                 / UDP(sport=4000, dport=53) / bytes(18))


class Producer(threading.Thread):
    """Runs mytcpdump's program with test-run: as fast as it can, or `rate`
    events per second in bursts every TICK_S, until stopped or `seconds`."""

    def __init__(self, obj: BpfObject, rate: int | None = None, seconds: float | None = None):
        super().__init__(daemon=True)
        self.prog, self.rate, self.seconds = obj.program("mytcpdump"), rate, seconds
        self.produced, self.stop = 0, threading.Event()
        self.frame = udp_frame()

    def run(self) -> None:
        start = time.perf_counter()
        while not self.stop.is_set():
            elapsed = time.perf_counter() - start
            if self.seconds is not None and elapsed >= self.seconds:
                break
            burst = BATCH if self.rate is None else due(self.rate, elapsed, self.produced)
            if burst:
                self.prog.test_run(self.frame, repeat=burst, out_size=0)
                self.produced += burst
            if self.rate is not None:
                time.sleep(TICK_S)


def due(rate: int, elapsed: float, done: int) -> int:
    """Events to offer now to be at `rate` after `elapsed` seconds: a late
    tick offers more, so the rate holds however the sleeps fall."""
    return min(max(0, int(rate * elapsed) - done), int(rate * TICK_S) * 10)


@contextlib.contextmanager
def mytcpdump_object():
    with BpfObject(object_path("mytcpdump"), load=False) as obj:
        ring_sizer(DEFAULT_RING_BYTES)(obj)
        obj.load()
        yield obj


def drops_of(obj: BpfObject) -> int:
    return sum(obj.map("mytcpdump_drops").bind(ctypes.c_uint32, ctypes.c_uint64).lookup(0))


def accounted(produced: int, consumed: int, dropped: int, what: str) -> None:
    if consumed + dropped != produced:
        raise RuntimeError(f"{what}: {consumed} consumed + {dropped} dropped != {produced} produced")


def python_consumer(rate: int | None = None, seconds: float = SECONDS) -> dict:
    with mytcpdump_object() as obj:
        stream = open_stream(obj)
        producer = Producer(obj, rate, seconds if rate else None)
        consumed, start = 0, time.perf_counter()
        producer.start()
        try:
            for batch in stream.batches(timeout=0.5):
                consumed += len(decode_columns(batch)["len"])
                if time.perf_counter() - start >= seconds and (rate is None or not producer.is_alive()):
                    break
        finally:
            producer.stop.set()
            producer.join()
        elapsed = time.perf_counter() - start
        consumed += sum(len(decode_columns(b)["len"]) for b in stream.batches(timeout=0))
        dropped = drops_of(obj)
        stream.close()
    accounted(producer.produced, consumed, dropped, "Python consumer")
    return {"events_per_s": round(consumed / elapsed), "produced": producer.produced, "consumed": consumed,
            "dropped": dropped, "ring_bytes": DEFAULT_RING_BYTES, "seconds": round(elapsed, 2)}


def c_consumer(seconds: float = SECONDS) -> dict:
    tool = BUILD_DIR / "bench" / "ring_count"
    with mytcpdump_object() as obj:
        map_id = obj.map("mytcpdump_events").id
        proc = subprocess.Popen([str(tool), str(map_id), str(seconds)], stdout=subprocess.PIPE, text=True)
        try:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{tool} did not start")
            producer = Producer(obj)
            producer.start()
            out, _ = proc.communicate(timeout=seconds + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        producer.stop.set()
        producer.join()
        # Produced after the consumer stopped counting: still in the ring.
        left = open_stream(obj)
        leftover = sum(len(b) for b in left.batches(timeout=0))
        left.close()
        result = json.loads(out)
        dropped = drops_of(obj)
    accounted(producer.produced, result["consumed"] + leftover, dropped, "C consumer")
    return {"events_per_s": round(result["consumed"] / result["seconds"]), "consumed": result["consumed"],
            "produced": producer.produced, "dropped": dropped}


DRAIN_RING_BYTES = 64 << 20  # 2M events of 32 bytes


def drain_rates() -> dict:
    """Events per second each consumer decodes out of a ring that is
    already full (2M events, no producer running): the consumers' own cost,
    like for like. With a producer running, the kernel wakes a reader each
    time it had caught up, and those wakeups slow the producer (measured
    here: 12.5M events/s alone, ~3M beside the C reader), so a faster
    reader can show a lower live figure."""
    out = {}
    for consumer in ("python", "c"):
        with BpfObject(object_path("mytcpdump"), load=False) as obj:
            ring_sizer(DRAIN_RING_BYTES)(obj)
            obj.load()
            obj.program("mytcpdump").test_run(udp_frame(), repeat=(DRAIN_RING_BYTES - 1) // 32, out_size=0)
            if consumer == "python":
                stream = open_stream(obj)
                start = time.perf_counter()
                consumed = sum(len(decode_columns(b)["len"]) for b in stream.batches(timeout=0))
                seconds = time.perf_counter() - start
                stream.close()
            else:
                tool = BUILD_DIR / "bench" / "ring_count"
                result = json.loads(subprocess.run([str(tool), str(obj.map("mytcpdump_events").id), "drain"],
                                                   capture_output=True, text=True, check=True, timeout=60).stdout)
                consumed, seconds = result["consumed"], result["seconds"]
            if drops_of(obj) != 0 or consumed != (DRAIN_RING_BYTES - 1) // 32:
                raise RuntimeError(f"{consumer} drain: {consumed} events read, {drops_of(obj)} dropped")
        out[consumer] = round(consumed / seconds)
    return {"events": (DRAIN_RING_BYTES - 1) // 32, "python_events_per_s": out["python"],
            "c_events_per_s": out["c"]}


def cli_json(rate: int = CLI_RATE, seconds: float = CLI_SECONDS) -> dict:
    """mytcpdump --json > file on the pair lab's right eth0, fed from the
    left by the live-frames generator at `rate` frames per second."""
    lab = builder.build(pair())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out_path = Path(tmp) / "events.jsonl"
            with open(out_path, "w") as out:
                cli = subprocess.Popen([sys.executable, "-m", "bpflab.loaders.mytcpdump", "eth0", "--netns",
                                        lab.netns("right"), "--json"], stdout=out, stderr=subprocess.PIPE, text=True)
                try:
                    wait_attached(cli)
                    sent, elapsed = generate_at(lab, rate, seconds)
                    time.sleep(0.5)  # the last bursts reach the file
                finally:
                    cli.terminate()
                    _, err = cli.communicate(timeout=30)
            lines = sum(1 for _ in open(out_path))
            first = json.loads(open(out_path).readline()) if lines else None
        summary = err.strip().splitlines()[-1]
        dropped = int(summary.split(" events shown, ")[1].split()[0])
    finally:
        lab.teardown()
    if first is not None and (first["proto_name"], first["dport"]) != ("UDP", 53):
        raise RuntimeError(f"mytcpdump --json wrote {first}, not the generated frame")
    accounted(sent, lines, dropped, "mytcpdump --json")
    return {"offered_per_s": rate, "seconds": round(elapsed, 2), "sent": sent, "written": lines, "dropped": dropped,
            "events_per_s": round(lines / elapsed)}


def wait_attached(cli: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = cli.stderr.readline()
        if "attached" in line:
            return
        if not line and cli.poll() is not None:
            break
    raise RuntimeError(f"mytcpdump did not say it attached within {timeout:.0f} s")


def generate_at(lab, rate: int, seconds: float) -> tuple[int, float]:
    left, right = lab.endpoint("left", "eth0"), lab.endpoint("right", "eth0")
    # To an address nobody has: the right stack drops it after mytcpdump saw it.
    frame = bytes(Ether(src=left.mac, dst=right.mac) / IP(src=left.ip, dst="10.255.0.1") / UDP(sport=4000, dport=53)
                  / bytes(18))
    from bpflab.bench.datapath import GenConfig

    with BpfObject(BUILD_DIR / "bench" / "gen.bpf.o") as gen, entered(lab.netns("left")):
        ifindex = lab.ifindex("left", "eth0")
        cfg = GenConfig.of(ifindex, frame)
        gen.map("gen_config").bind(ctypes.c_uint32, GenConfig).update(0, cfg)
        ctx = xdp_md(data=0, data_end=len(frame), ingress_ifindex=ifindex)
        sent, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            burst = due(rate, elapsed, sent)
            if burst:
                gen.program("gen").test_run(frame, repeat=burst, ctx=ctx, flags=BPF_F_TEST_XDP_LIVE_FRAMES,
                                            out_size=0)
                sent += burst
            time.sleep(TICK_S)
        return sent, time.perf_counter() - start


def measure() -> dict:
    drain = drain_rates()
    return {"ringbuf_events_per_s": {**python_consumer(), "drain_events_per_s": drain["python_events_per_s"]},
            "c_consumer_events_per_s": {**c_consumer(), "drain_events_per_s": drain["c_events_per_s"]},
            "offered_rate_drops": {"offered_per_s": OFFERED_RATE, **python_consumer(OFFERED_RATE, OFFERED_SECONDS)},
            "cli_json_events_per_s": cli_json()}
