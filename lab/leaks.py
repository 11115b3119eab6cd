"""What a test session may have left behind: its namespaces, pins,
tracefs instances and processes (for the leak guard)."""
from __future__ import annotations

import os
from pathlib import Path

from . import owner as owners


def leftovers(pid: int | None = None) -> list[str]:
    """Things owned by `pid` (default: this process) or by dead owners."""
    pid = pid or os.getpid()
    found = []
    for d, what in ((owners.NETNS_DIR, "namespace"), (owners.BPFFS, "bpffs pin")):
        if d.is_dir():
            for entry in d.iterdir():
                m = owners._OWNED.match(entry.name)
                if m and (int(m.group(1)) == pid or not owners.owner_alive(int(m.group(1)))):
                    found.append(f"{what} {entry}")
    inst = Path("/sys/kernel/tracing/instances")
    if inst.is_dir():
        for entry in inst.glob("bpflab-*"):
            owner = entry.name.rsplit("-", 1)[-1]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                found.append(f"tracefs instance {entry}")
    from bpflab.loaders.pins import dead_instances

    found += [f"pins of a dead loader instance {d}" for d in dead_instances()]
    for proc, owner in owners.marked_processes().items():
        if owner == pid or not owners.owner_alive(owner):
            found.append(f"process {proc} started by a lab of owner {owner}")
    return found
