"""What bpflab may leave on this host, found and removed in one place: for
the sweep before a lab is built and a test session starts, the leak guard
after it, and `python -m bpflab.lab`.

Owned things carry their owner's pid (bpflab.host.owners): namespaces in
/run/netns and pin directories in bpffs named PREFIX + "PID-...", and
processes marked BPFLAB_OWNER=PID. Loader instances (bpflab.host.instances)
and tracefs instances (bpflab.host.tracefs) hold their own proof of life.
Anything whose owner is dead is a leftover.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from . import instances, netns, owners, processes, tracefs
from .paths import BPFFS, NETNS_RUN_DIR


@dataclasses.dataclass(frozen=True)
class Leftover:
    kind: str   # "namespace", "pin directory", "process", "loader instance", "tracefs instance"
    where: str  # a path, or a pid
    owner: int | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.where}" + (f" (owner {self.owner})" if self.owner is not None else "")


def _owned() -> dict[int, tuple[list[str], list[Path]]]:
    """{owner pid: (namespace names, pin directories)} of everything named for an owner."""
    found: dict[int, tuple[list[str], list[Path]]] = {}
    for directory, is_netns in ((NETNS_RUN_DIR, True), (BPFFS, False)):
        if directory.is_dir():
            for entry in directory.iterdir():
                owner = owners.owner_of(entry.name)
                if owner is not None:
                    names, pins = found.setdefault(owner, ([], []))
                    (names.append(entry.name) if is_netns else pins.append(entry))
    return found


def find(*, mine: int | None = None, owned_only: bool = False, only_mine: bool = False) -> list[Leftover]:
    """Everything of owners that are dead, and everything of owner `mine`
    (a session checking that it cleaned up after itself). `owned_only`: not
    dead loader and tracefs instances. `only_mine`: nothing of other owners."""
    def gone(owner: int) -> bool:
        return owner == mine or (not only_mine and not owners.alive(owner))

    found = []
    for owner, (names, pins) in sorted(_owned().items()):
        if gone(owner):
            found += [Leftover("namespace", str(NETNS_RUN_DIR / n), owner) for n in names]
            found += [Leftover("pin directory", str(p), owner) for p in pins]
    marked = processes.marked_processes()
    found += [Leftover("process", str(pid), owner) for pid, owner in sorted(marked.items()) if gone(owner)]
    # Owners dead with nothing left but their lock file.
    found += [Leftover("owner lock", str(owners.lock_path(o)), o) for o in owners.known_owners() if gone(o)]
    if not owned_only and not only_mine:
        found += [Leftover("loader instance", str(d)) for d in instances.dead()]
        found += [Leftover("tracefs instance", str(t)) for t in tracefs.dead_instances()]
    return found


def destroy(namespace_names: list[str], pin_dirs: list[Path], owner_pid: int | None = None) -> None:
    """Kill what lives in the namespaces (and what `owner_pid` started),
    then remove the namespaces and the pin directories."""
    inodes = {ino for name in namespace_names if (ino := netns.inode(name)) is not None}
    victims = processes.pids_in_netns(inodes) if inodes else []
    if owner_pid is not None:
        victims += [pid for pid, owner in processes.marked_processes().items() if owner == owner_pid]
    processes.kill_all(sorted(set(victims)))
    for name in namespace_names:
        netns.remove(name)
    for pin_dir in pin_dirs:
        # bpffs has no recursive removal: files, then directories.
        shutil.rmtree(pin_dir, ignore_errors=True)


def remove(found: list[Leftover]) -> None:
    """Remove what find() found: processes first (a namespace lives on while
    a process in it does), then namespaces, pins, instances, lock files."""
    of = {kind: [left for left in found if left.kind == kind] for kind in {left.kind for left in found}}
    destroy([Path(left.where).name for left in of.get("namespace", [])],
            [Path(left.where) for left in of.get("pin directory", [])])
    processes.kill_all([int(left.where) for left in of.get("process", [])])
    for left in of.get("loader instance", []):
        instances.remove(Path(left.where))
    for left in of.get("tracefs instance", []):
        tracefs.remove(Path(left.where))
    for left in of.get("owner lock", []):
        Path(left.where).unlink(missing_ok=True)


def summary(found: list[Leftover]) -> str:
    """"3 namespaces, 1 process (owners 1234, 5678)": what find() found, in one line."""
    kinds: dict[str, int] = {}
    for left in found:
        kinds[left.kind] = kinds.get(left.kind, 0) + 1
    owners_ = sorted({left.owner for left in found if left.owner is not None})
    words = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}".replace("directorys", "directories")
                      for kind, n in kinds.items())
    return words + (f" (owner{'s' if len(owners_) > 1 else ''} {', '.join(map(str, owners_))}, dead)" if owners_ else "")


def sweep(*, owned_only: bool = False) -> list[Leftover]:
    """Remove everything dead owners left; returns what was there.
    `owned_only`: not dead loader and tracefs instances (a lab being built
    leaves those to the loader that comes next, which reports them)."""
    found = find(owned_only=owned_only)
    remove(found)
    return found
