"""The checksum states in which the kernel hands a tc program a packet, and
which of them this machine can run it in.

    none      CHECKSUM_NONE (or UNNECESSARY): the L4 field holds the whole
              checksum and nothing else tracks it. Test-run hands tc
              programs only these; so do veth and most NICs on receive
              when they verified the checksum (tc ingress).
    complete  CHECKSUM_COMPLETE: the receiving NIC summed the whole packet
              into skb->csum, which must follow every byte the program
              changes (tc ingress behind NICs that report full checksums:
              mlx5, virtio-net with guest csum). Test-run makes one with
              BPF_F_TEST_SKB_CHECKSUM_COMPLETE (Linux 6.11) and refuses the
              result with EBADMSG when skb->csum no longer matches.
    partial   CHECKSUM_PARTIAL: a local TCP or UDP socket sent it on a device
              with TX checksum offload, so the L4 field holds only the
              pseudo-header sum, to be finished later (tc egress on almost
              every host; forwarded into a container's veth). Run in a lab
              (bpflab.tool.egress).

XDP programs get raw frames before any skb exists: no state applies.
"""
from __future__ import annotations

import os
import struct

from bpflab.host import kernel
from bpflab.lab.checksums import l4_span, pseudo_header_sum
from bpflab.lab.packets import CHECKSUM_AT

STATES = ("none", "complete", "partial")


class StateError(ValueError):
    """--states names something that cannot be run here (said why)."""


def parse(text: str) -> list[str]:
    """"none,complete" -> ["none", "complete"], in STATES' order."""
    asked = [word.strip() for word in text.split(",") if word.strip()]
    unknown = [word for word in asked if word not in STATES]
    if unknown or not asked:
        raise StateError(f"--states {text}: choose from {', '.join(STATES)} (comma-separated)")
    return [state for state in STATES if state in asked]


def unavailable(*, in_namespace: bool) -> dict[str, str]:
    """{state: why this machine cannot run it}. `in_namespace`: the run is
    inside --netns or --lab, whose routing the partial state's own lab
    would not have."""
    why = {}
    if not kernel.has("skb_checksum_complete_test_run"):
        since, _ = kernel.FEATURES["skb_checksum_complete_test_run"]
        why["complete"] = f"needs Linux {since} (this is {os.uname().release})"
    if os.geteuid() != 0:
        why["partial"] = "needs root, to build its lab of network namespaces"
    elif in_namespace:
        why["partial"] = "runs in a lab of its own, not inside --netns or --lab"
    return why


def choose(kind: str, asked: list[str] | None, *, in_namespace: bool = False) -> tuple[tuple[str, ...], dict[str, str]]:
    """(the states to run, {state left out: why}). Asked for by name, a
    state that cannot run is an error; by default every state that can run
    does, and the others are said."""
    if kind != "tc":
        if asked and asked != ["none"]:
            raise StateError(f"--states: a {kind} program gets raw frames, before the kernel gives them a "
                             "checksum state (only tc programs have one)")
        return ("none",), {}
    why = unavailable(in_namespace=in_namespace)
    if asked is not None:
        refused = [f"{state}: {why[state]}" for state in asked if state in why]
        if refused:
            raise StateError(f"--states {','.join(asked)}: {'; '.join(refused)}")
        return tuple(asked), {}
    return tuple(s for s in STATES if s not in why), why


def as_partial(frame: bytes) -> tuple[bytes, int, int] | None:
    """`frame` as its sender's stack would hand it to the device with TX
    checksum offload: the L4 field holding the (folded) pseudo-header sum,
    with where the checksum starts and where its field is; None for what a
    stack never sends partial (not TCP or UDP, a UDP datagram without a
    checksum, a fragment, a frame cut short)."""
    span = l4_span(frame)
    if span is None:
        return None
    proto, start, end, src, dst = span
    where = CHECKSUM_AT.get(proto)
    if proto not in (6, 17) or end - start < where + 2:
        return None
    if proto == 17 and frame[start + 6:start + 8] == b"\0\0":
        return None
    field = start + where
    pseudo = pseudo_header_sum(src, dst, proto, end - start)
    return frame[:field] + struct.pack("!H", pseudo) + frame[field + 2:], start, where
