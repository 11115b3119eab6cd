"""Frames in and out of a lab node's interface, with a record for pcaps.

A packet socket stays bound to the namespace it was created in, so sockets
are opened inside the node (this thread, briefly) and used from anywhere.
Scapy builds and parses; sending is a plain AF_PACKET send of bytes. Scapy is
imported when a frame is first parsed: it costs processes that only build
labs (owners, servers, pytest runs in tests) a third of a second each.
"""
from __future__ import annotations

import dataclasses
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from bpflab.host.netns import entered

if TYPE_CHECKING:
    from scapy.packet import Packet


def Ether(data: bytes) -> Packet:  # noqa: N802 - scapy's name, imported on first use
    import scapy.layers.inet  # noqa: F401 - binds IP, TCP, UDP, ICMP under Ether
    from scapy.layers.l2 import Ether as ScapyEther

    return ScapyEther(data)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET, PACKET_AUXDATA = 263, 8
# struct tpacket_auxdata: status, len, snaplen, mac, net, vlan_tci, vlan_tpid
AUXDATA = struct.Struct("=IIIHHHH")
TP_STATUS_CSUMNOTREADY, TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 1 << 3, 1 << 4, 1 << 6


@dataclasses.dataclass
class Frame:
    """One frame seen or sent by the lab, for assertions and pcaps."""

    time: float
    node: str
    ifname: str
    direction: str  # "sent" or "captured"
    data: bytes
    partial: bool = False  # captured with CHECKSUM_PARTIAL: the L4 field holds the pseudo-header sum

    @property
    def packet(self) -> Packet:
        return Ether(self.data)


class FrameLog:
    """Every frame the lab injected or captured, in order."""

    def __init__(self):
        self.frames: list[Frame] = []
        self._lock = threading.Lock()

    def add(self, frame: Frame) -> None:
        with self._lock:
            self.frames.append(frame)

    def write_pcaps(self, directory) -> list:
        """One pcap per interface (node-ifname.pcap); returns the paths."""
        from scapy.utils import wrpcap

        paths = []
        by_iface: dict[tuple[str, str], list[Frame]] = {}
        for f in self.frames:
            by_iface.setdefault((f.node, f.ifname), []).append(f)
        from scapy.layers.l2 import Ether
        for (node, ifname), frames in sorted(by_iface.items()):
            packets = []
            for f in frames:
                p = Ether(f.data)
                p.time = f.time
                packets.append(p)
            path = directory / f"lab-{node}-{ifname}.pcap"
            wrpcap(str(path), packets)
            paths.append(path)
        return paths


def open_packet_socket(netns: str, ifname: str) -> socket.socket:
    with entered(netns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.bind((ifname, ETH_P_ALL))
        except OSError:
            sock.close()
            from bpflab.host.netns import InterfaceNotFound

            raise InterfaceNotFound(ifname, netns) from None
    return sock


def to_bytes(frame) -> bytes:
    """A scapy packet or bytes, as bytes."""
    return bytes(frame)


class Sender:
    def __init__(self, netns: str, node: str, ifname: str, log: FrameLog | None):
        self.node, self.ifname, self._log = node, ifname, log
        self._sock = open_packet_socket(netns, ifname)

    def send(self, frames: Packet | bytes | Iterable[Packet | bytes]) -> int:
        if isinstance(frames, (bytes, bytearray)) or hasattr(frames, "build"):  # bytes, or one scapy packet
            frames = [frames]
        n = 0
        for frame in frames:
            data = to_bytes(frame)
            self._sock.send(data)
            if self._log is not None:
                self._log.add(Frame(time.time(), self.node, self.ifname, "sent", data))
            n += 1
        return n

    def close(self) -> None:
        self._sock.close()


def with_auxdata(data: bytes, ancillary) -> tuple[bytes, bool]:
    """The frame as it was on the wire (a VLAN tag the kernel took off put
    back, as libpcap does) and whether its checksum is partial."""
    for level, kind, raw in ancillary:
        if (level, kind) == (SOL_PACKET, PACKET_AUXDATA) and len(raw) >= AUXDATA.size:
            status, _len, _snap, _mac, _net, tci, tpid = AUXDATA.unpack_from(raw)
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            return data, bool(status & TP_STATUS_CSUMNOTREADY)
    return data, False


class Capture:
    """Frames arriving at an interface (incoming only, after any XDP program),
    matching `match`, collected by a background thread from start to stop."""

    def __init__(self, netns: str, node: str, ifname: str, match: Callable[[Packet], bool] | None,
                 log: FrameLog | None, outgoing: bool = False):
        self.node, self.ifname = node, ifname
        self._match, self._log, self._outgoing = match, log, outgoing
        self._sock = open_packet_socket(netns, ifname)
        self._sock.setblocking(False)
        # Per frame: is its checksum partial, and the VLAN tag the kernel took off.
        self._sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.frames: list[bytes] = []
        self.partial: list[bool] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"capture-{node}-{ifname}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if not ready:
                continue
            while True:
                try:
                    data, ancillary, _flags, addr = self._sock.recvmsg(65535, socket.CMSG_SPACE(AUXDATA.size))
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING and not self._outgoing:
                    continue
                data, partial = with_auxdata(data, ancillary)
                if self._match is not None:
                    try:
                        if not self._match(Ether(data)):
                            continue
                    except Exception:
                        continue
                if self._log is not None:
                    self._log.add(Frame(time.time(), self.node, self.ifname, "captured", data, partial))
                with self._cond:
                    self.frames.append(data)
                    self.partial.append(partial)
                    self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 2.0) -> list[Packet]:
        """Parsed frames once `count` have arrived, or all there are after
        `timeout` seconds (fewer than count: the caller's assertion fails)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.frames) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return [Ether(d) for d in self.frames]

    def stop(self) -> list[Packet]:
        self._stop.set()
        self._thread.join()
        self._sock.close()
        return [Ether(d) for d in self.frames]

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc) -> None:
        if not self._stop.is_set():
            self.stop()
