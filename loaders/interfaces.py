"""Attachments to an interface by name, in any network namespace: the
binding's links (bpflab.libbpf, which knows only interface indexes in the
calling thread's namespace) made inside the namespace the interface is in."""
from __future__ import annotations

import contextlib

from bpflab.host.netns import NamespaceNotFound, entered, ifindex
from bpflab.libbpf import AlreadyAttached, Attachment, TcAttachment, XdpLink, XdpState, xdp_query
from bpflab.libbpf.xdp import detach_any as detach_any_at


class XdpOnInterface(Attachment):
    """An XDP program attached to `iface` of `netns` through a bpf_link."""

    def __init__(self, prog_fd: int, iface: str, netns: str | None = None, mode: str | None = None):
        self.iface, self.netns = iface, netns
        with entered(netns):
            self.ifindex = ifindex(iface)
            try:
                self._link = XdpLink(prog_fd, self.ifindex, mode)
            except AlreadyAttached as exc:
                exc.name = iface
                raise

    @property
    def mode(self) -> str | None:
        """The mode the kernel attached in."""
        return self._link.mode

    def close(self) -> None:
        self._link.close()


def query(iface: str, netns: str | None = None) -> XdpState:
    """What XDP program (if any) `iface` of `netns` has."""
    with entered(netns):
        return xdp_query(ifindex(iface))


def detach_any(iface: str, netns: str | None = None) -> XdpState:
    """Remove whatever XDP program `iface` of `netns` has (for --force)."""
    with entered(netns):
        return detach_any_at(ifindex(iface))


class TcOnInterface(Attachment):
    """A tc program on `iface` of `netns`, at ingress or egress (tcx link, or classic)."""

    def __init__(self, prog_fd: int, iface: str, netns: str | None = None, direction: str = "ingress"):
        self.iface, self.netns = iface, netns
        with entered(netns):
            self._link = TcAttachment(prog_fd, ifindex(iface), direction)
        self.kind = self._link.kind

    def close(self) -> None:
        if not self._link.needs_namespace_to_detach:
            self._link.close()
            return
        with contextlib.suppress(NamespaceNotFound):  # the namespace is gone, and the filter with it
            with entered(self.netns):
                self._link.close()
