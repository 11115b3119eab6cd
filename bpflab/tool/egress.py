"""A tc program at egress, on packets with CHECKSUM_PARTIAL, as every host's
tc egress program gets locally sent TCP and UDP on a device with TX
checksum offload. Test-run cannot make such an skb, so a lab does
(bpflab.lab.topology.egress: sender -- middle -- sink).

A frame is sent from a packet socket in the sender with a virtio-net
header that asks for the checksum to be finished later (NEEDS_CSUM,
csum_start at the L4 header): the kernel builds the same partial skb its
TCP and UDP stacks build, the L4 field holding the pseudo-header sum. The
program runs at the sender's eth0 egress. What arrives is judged twice:
at the middle, still partial (the field must hold the pseudo-header sum of
the addresses the program left), and at the sink, after the middle's
kernel completed the checksum in software (the full checksum, and the
sink's and middle's kernels' checksum-error counters).

Every frame is followed by a sentinel sent around the program (a socket
with PACKET_QDISC_BYPASS, which skips the tc egress hook): once it has
arrived at both captures, everything the frame became has too, so no wait
is a guess. A drop at egress (TC_ACT_SHOT) fails the send with ENOBUFS.
"""
from __future__ import annotations

import dataclasses
import errno
import itertools
import select
import socket
import struct
import time

from bpflab.host.netns import entered
from bpflab.host.waits import scaled_timeout
from bpflab.lab import build, counters
from bpflab.lab.packets import ether, ipv4, udp
from bpflab.lab.topology import EGRESS_MIDDLE_MAC, EGRESS_SENDER_MAC, egress
from bpflab.lab.traffic import AUXDATA, ETH_P_ALL, PACKET_AUXDATA, PACKET_OUTGOING, SOL_PACKET, with_auxdata
from bpflab.loaders.interfaces import TcOnInterface
from bpflab.tool.states import as_partial

PACKET_VNET_HDR, PACKET_QDISC_BYPASS = 15, 20
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
# struct virtio_net_hdr (no GSO): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, in host order
VNET_HDR = struct.Struct("=BBHHHH")
NO_VNET_HDR = VNET_HDR.pack(0, 0, 0, 0, 0, 0)
SENTINEL = b"bpflab-egress-sentinel-"
SENTINEL_TIMEOUT_S = 2.0

@dataclasses.dataclass(frozen=True)
class Arrival:
    """What one frame became."""

    dropped: bool                  # the program (or the device) dropped it at egress
    at_middle: list[tuple[bytes, bool]]  # (frame, still partial) as the middle got it, before anything else
    at_sink: list[tuple[bytes, bool]]    # after the middle's kernel forwarded (and completed) it
    kernel_errors: dict[str, int]  # checksum-error counters that moved at the middle or the sink


class EgressLabError(RuntimeError):
    """The lab itself failed (a sentinel lost): no verdict on the program."""


class EgressRun:
    """The egress lab with one tc program attached at the sender's egress.
    Close it (or use `with`): the lab and the attachment go."""

    def __init__(self, prog_fd: int):
        self.lab = build(egress())
        self._sockets: list[socket.socket] = []
        self._seq = itertools.count()
        try:
            self._attachment = TcOnInterface(prog_fd, "eth0", self.lab.netns("sender"), direction="egress")
            with entered(self.lab.netns("sender")):
                self._frames = self._socket("eth0", PACKET_VNET_HDR)
                self._around = self._socket("eth0", PACKET_QDISC_BYPASS)
            self._listeners = {node: self._listener(node) for node in ("middle", "sink")}
            self._counted = self._errors()  # the counters as the last frame left them
        except BaseException:
            self.close()
            raise

    def _socket(self, ifname: str, option: int) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._sockets.append(sock)
        sock.setsockopt(SOL_PACKET, option, 1)
        sock.bind((ifname, 0))
        return sock

    def _listener(self, node: str) -> socket.socket:
        with entered(self.lab.netns(node)):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sockets.append(sock)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.bind(("eth0", ETH_P_ALL))
        sock.setblocking(False)
        return sock

    def _sentinel(self, seq: int) -> bytes:
        payload = SENTINEL + str(seq).encode()
        return ether(EGRESS_MIDDLE_MAC, EGRESS_SENDER_MAC) + ipv4("198.18.0.1", "198.19.0.2", 17,
                                                                  udp("198.18.0.1", "198.19.0.2", 9, 9, payload,
                                                                      no_checksum=True))

    def _until_sentinel(self, node: str, seq: int) -> list[tuple[bytes, bool]]:
        sock, mark = self._listeners[node], SENTINEL + str(seq).encode()
        got: list[tuple[bytes, bool]] = []
        deadline = time.monotonic() + scaled_timeout(SENTINEL_TIMEOUT_S)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EgressLabError(f"the egress lab's sentinel {seq} did not reach the {node} within "
                                     f"{scaled_timeout(SENTINEL_TIMEOUT_S):.0f} s")
            if not select.select([sock], [], [], left)[0]:
                continue
            data, ancillary, _flags, addr = sock.recvmsg(65535, socket.CMSG_SPACE(AUXDATA.size))
            if addr[2] == PACKET_OUTGOING:
                continue
            if data.endswith(mark):
                return got
            if SENTINEL not in data:  # a late sentinel of an earlier frame is not this frame's
                got.append(with_auxdata(data, ancillary))

    def run(self, frame: bytes) -> Arrival:
        """Send `frame` partial when a stack would (as_partial), as it is
        otherwise, through the program; what arrived where."""
        seq = next(self._seq)
        before = self._counted
        partial = as_partial(frame)
        if partial is not None:
            data, start, where = partial
            header = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, start, where)
        else:
            data, header = frame, NO_VNET_HDR
        dropped = False
        try:
            self._frames.send(header + data)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            dropped = True
        self._around.send(self._sentinel(seq))
        at_middle = self._until_sentinel("middle", seq)
        at_sink = self._until_sentinel("sink", seq)
        after = self._counted = self._errors()
        moved = {name: after[name] - before[name] for name in after if after[name] != before[name]}
        return Arrival(dropped, at_middle, at_sink, moved)

    def _errors(self) -> dict[str, int]:
        return {f"{node} {name}": n for node in ("middle", "sink")
                for name, n in counters.checksum_errors(self.lab.netns(node)).items()}

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        attachment = getattr(self, "_attachment", None)
        if attachment is not None:
            attachment.close()
            self._attachment = None
        self.lab.teardown()

    def __enter__(self) -> EgressRun:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
