"""`bpflab run`: every frame of a pcap or pcapng through a program, with
what it decided, what it changed and whether the checksums it sent are
right; --out writes what it sent, each frame carrying its verdict as a
pcapng comment (Wireshark shows it in the packet's details)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from bpflab.lab.checksums import verify_frame
from bpflab.tool.fields import changes
from bpflab.tool.target import Target, TargetError


@dataclasses.dataclass
class Replayed:
    index: int
    verdict: str
    changed: list[str]
    checksums: str  # "ok", "unchanged", or what is wrong
    data: bytes

    def line(self) -> str:
        what = "; ".join(self.changed) if self.changed else "unchanged"
        return f"{self.index:>5}  {self.verdict:<15} {what}  [checksums: {self.checksums}]"

    def as_json(self) -> dict:
        return {"index": self.index, "verdict": self.verdict, "changed": self.changed, "checksums": self.checksums}


def read_frames(path: str | Path) -> list[bytes]:
    from scapy.error import Scapy_Exception
    from scapy.utils import rdpcap

    if not Path(path).is_file():
        raise TargetError(f"capture {path} not found")
    try:
        return [bytes(packet) for packet in rdpcap(str(path))]
    except (Scapy_Exception, OSError, ValueError) as exc:
        raise TargetError(f"{path}: not a pcap or pcapng file ({exc})") from None


def replay(target: Target, frames: list[bytes]) -> list[Replayed]:
    out = []
    for i, frame in enumerate(frames):
        try:
            outcome = target.run(frame)
        except OSError as exc:  # e.g. a frame shorter than Ethernet: the kernel refuses it
            out.append(Replayed(i, "REFUSED", [f"test-run refused the frame: {exc.strerror}"], "-", b""))
            continue
        if outcome.data == frame:
            status = "unchanged"
        else:
            verdict = verify_frame(outcome.data)
            status = "ok" if verdict.ok else "; ".join(str(p) for p in verdict.problems)
            if verdict.ok and verdict.unchecked:
                status = f"ok (not checked: {verdict.unchecked})"
        out.append(Replayed(i, outcome.verdict, changes(frame, outcome.data), status, outcome.data))
    return out


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
