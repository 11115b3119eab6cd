"""`bpflab run`: every frame of a pcap or pcapng through a program, with
what it decided, what it changed and whether the checksums it sent are
right (a tc program in each checksum state, bpflab.tool.states); --out
writes what it sent, each frame carrying its verdict as a pcapng comment
(Wireshark shows it in the packet's details)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from bpflab.host.interrupts import checkpoint
from bpflab.tool.fields import changes
from bpflab.tool.judge import Judgement, judge
from bpflab.tool.states import as_partial
from bpflab.tool.target import Outcome, Target, TargetError


@dataclasses.dataclass
class StateRun:
    """One frame in one checksum state (tc programs)."""

    verdict: str         # TC_ACT_OK, ...; REFUSED (complete); SENT or DROPPED (partial); "-": not run
    checksums: str       # Judgement.summary(), or why the state did not apply

    def as_json(self) -> dict:
        return {"verdict": self.verdict, "checksums": self.checksums}


@dataclasses.dataclass
class Replayed:
    index: int
    verdict: str
    changed: list[str]
    checksums: str  # "ok", "unchanged", or what is wrong (tc: in any state)
    data: bytes
    bad: bool = False
    states: dict[str, StateRun] | None = None  # tc programs: each state that was run
    gap: bool = False  # changed, and something in it could not be judged (in some state)

    def line(self) -> str:
        what = "; ".join(self.changed) if self.changed else "unchanged"
        if self.states is None:
            return f"{self.index:>5}  {self.verdict:<15} {what}  [checksums: {self.checksums}]"
        each = "; ".join(f"{state}: {r.verdict}, {r.checksums}" for state, r in self.states.items())
        return f"{self.index:>5}  {self.verdict:<15} {what}  [{each}]"

    def as_json(self) -> dict:
        states = None if self.states is None else {state: r.as_json() for state, r in self.states.items()}
        return {"index": self.index, "verdict": self.verdict, "changed": self.changed, "checksums": self.checksums,
                "states": states}


LINKTYPE_ETHERNET = 1
LINKTYPES = {0: "BSD loopback", 101: "raw IP (no link-layer header)", 113: "Linux cooked (SLL)",
             228: "raw IPv4", 229: "raw IPv6", 276: "Linux cooked v2 (SLL2)"}


def read_frames(path: str | Path) -> list[bytes]:
    """Every frame of a pcap or pcapng file of Ethernet frames, each whole:
    another link type, a frame the capture cut at its snap length, or a
    file that ends in the middle of a record is unusable input (the program
    would run on something else than was sent), said in one line."""
    import logging

    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    if not Path(path).is_file():
        raise TargetError(f"capture {path} not found")
    complaints: list[str] = []  # scapy says so when a record is cut short
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: complaints.append(record.getMessage())
    scapy_log = logging.getLogger("scapy.runtime")
    scapy_log.addHandler(handler)
    propagated, scapy_log.propagate = scapy_log.propagate, False  # to us, not printed as scapy's WARNING
    frames: list[bytes] = []
    try:
        with RawPcapReader(str(path)) as reader:
            for data, meta in reader:
                where = f"{path}: frame {len(frames)}"
                linktype = getattr(meta, "linktype", getattr(reader, "linktype", LINKTYPE_ETHERNET))
                if linktype != LINKTYPE_ETHERNET:
                    raise TargetError(f"{where} is {LINKTYPES.get(linktype, f'of link type {linktype}')}, not an "
                                      f"Ethernet frame: bpflab run takes Ethernet frames (capture on an Ethernet "
                                      f"interface)")
                if len(data) < getattr(meta, "caplen", len(data)):
                    raise TargetError(f"{where}: the file ends in the middle of it (cut short)")
                if len(data) < meta.wirelen:
                    raise TargetError(f"{where} was captured cut short ({len(data)} of its {meta.wirelen} bytes: the "
                                      f"capture's snap length; capture with -s 0)")
                frames.append(data)
    except (Scapy_Exception, OSError, ValueError) as exc:
        raise TargetError(f"{path}: not a pcap or pcapng file ({exc})") from None
    finally:
        scapy_log.removeHandler(handler)
        scapy_log.propagate = propagated
    if any("truncated" in c or "too short" in c for c in complaints):
        raise TargetError(f"{path}: the file ends in the middle of a record after frame {len(frames) - 1} (cut short)")
    return frames


def replay(target: Target, frames: list[bytes], states: tuple[str, ...] = ("none",), udp6_zero_ports=()
           ) -> list[Replayed]:
    """Each frame through the program; a tc program in each of `states`
    (the first one's verdict and output lead the line)."""
    out = []
    for i, frame in enumerate(frames):
        checkpoint("run-frame")
        try:
            first = target.run(frame, states[0])
        except OSError as exc:  # e.g. a frame shorter than Ethernet: the kernel refuses it
            out.append(Replayed(i, "REFUSED", [f"test-run refused the frame: {exc.strerror}"], "-", b""))
            continue
        judged = {states[0]: (first, judge(frame, first, udp6_zero_ports=udp6_zero_ports))}
        if target.kind == "tc":
            for state in states[1:]:
                judged[state] = _in_state(target, frame, state, udp6_zero_ports)
        _, verdict = judged[states[0]]
        bad = any(j is not None and not j.ok for _, j in judged.values())
        gap = any(j is not None and j.gap for _, j in judged.values())
        worst = next((j.summary() for _, j in judged.values() if j is not None and (not j.ok or j.gap)),
                     verdict.summary())
        runs = None
        if target.kind == "tc":
            runs = {state: StateRun(o.verdict if o else "-", j.summary() if j else why)
                    for state, (o, j), why in ((s, judged[s], _not_run(frame, s)) for s in judged)}
        data = first.data if first.data else frame
        out.append(Replayed(i, first.verdict, changes(frame, data) if data != frame else [], worst, first.data, bad,
                            runs, gap))
    return out


def _in_state(target: Target, frame: bytes, state: str, udp6_zero_ports) -> tuple[Outcome | None, Judgement | None]:
    if state == "partial" and as_partial(frame) is None:
        return None, None
    outcome = target.run(frame, state)
    return outcome, judge(frame, outcome, udp6_zero_ports=udp6_zero_ports)


def _not_run(frame: bytes, state: str) -> str:
    return "not run: only TCP and UDP with a checksum go out partial" \
        if state == "partial" and as_partial(frame) is None else ""


def write_pcapng(path: str | Path, results: list[Replayed]) -> None:
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcapng

    packets = []
    for r in results:
        if not r.data:
            continue
        packet = Ether(r.data)
        packet.comments = [f"bpflab run: frame {r.index}, {r.verdict}; checksums {r.checksums}".encode()]
        packets.append(packet)
    wrpcapng(str(path), packets)
