"""`python -m bpflab.lab`: labs for people, like xdp-tutorial's testenv.

    python -m bpflab.lab up [pair|dnat|...] build a lab that outlives this command
    python -m bpflab.lab status             what `up` made, and whether it is there
    python -m bpflab.lab exec NODE -- CMD   run CMD inside a node of that lab
    python -m bpflab.lab down               remove exactly what `up` made
    python -m bpflab.lab sweep [--dry-run]  remove what dead owners left (a SIGKILLed run's labs)
    python -m bpflab.lab demo               the README's demo
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bpflab.host import leftovers
from bpflab.host.commandline import OneLineParser
from bpflab.host.interrupts import checkpoint
from bpflab.host.netns import NamespaceNotFound, open_netns, setns
from bpflab.host.paths import NETNS_RUN_DIR, STATE_DIR
from bpflab.lab import builder
from bpflab.lab.topology import TOPOLOGIES

PROG = "python -m bpflab.lab"


def lab_name() -> str:
    """One CLI lab per name; BPFLAB_LAB_NAME lets several coexist (tests use
    it). Read when a command runs: a fork server imports this module once."""
    return os.environ.get("BPFLAB_LAB_NAME", "cli")


def state_file() -> Path:
    return STATE_DIR / f"lab-{lab_name()}.json"


class LabError(Exception):
    pass


def load_state() -> dict | None:
    try:
        return json.loads(state_file().read_text())
    except FileNotFoundError:
        return None


def up(topology: str) -> int:
    if os.geteuid() != 0:
        raise LabError("needs root to create network namespaces")
    state = load_state()
    if state is not None:
        raise LabError(f"a {state['topology']} lab is already up (python -m bpflab.lab down removes it)")
    lab = builder.build(TOPOLOGIES[topology](), prefix=f"bpflab-{lab_name()}")
    try:
        checkpoint("lab-up")
        state_file().parent.mkdir(parents=True, exist_ok=True)
        state_file().write_text(json.dumps({"topology": topology, "prefix": lab.prefix, "namespaces": lab.namespaces,
                                          "pin_dir": str(lab.pin_dir)}))
    except BaseException:  # interrupted before it was recorded: nothing could ever bring it down
        lab.teardown()
        raise
    lab.keep()  # it outlives this process on purpose
    print(f"{topology} lab is up:")
    print_nodes(lab.topology, lab.namespaces)
    print("run commands in it with: python -m bpflab.lab exec NODE -- CMD; remove it with: python -m bpflab.lab down")
    return 0


def print_nodes(topology, namespaces: dict[str, str]) -> None:
    for node, ns in namespaces.items():
        ends = [end for link in topology.links for end in (link.a, link.b) if end.node == node]
        desc = ", ".join(f"{e.ifname} {e.address} {e.mac}" for e in ends)
        print(f"  {node:8} netns {ns:24} {desc}")


def status() -> int:
    state = load_state()
    if state is None:
        print("no lab is up")
        return 0
    topology = TOPOLOGIES[state["topology"]]()
    print(f"{state['topology']} lab:")
    print_nodes(topology, state["namespaces"])
    missing = [ns for ns in state["namespaces"].values() if not (NETNS_RUN_DIR / ns).exists()]
    if missing:
        print(f"missing namespaces (removed by hand?): {', '.join(missing)}")
        return 1
    return 0


def down() -> int:
    state = load_state()
    if state is None:
        print("no lab is up")
        return 0
    leftovers.destroy(list(state["namespaces"].values()), [Path(state["pin_dir"])])
    state_file().unlink()
    print(f"{state['topology']} lab removed")
    return 0


def sweep(dry_run: bool) -> int:
    """Everything owners that died left on this host (bpflab.host.leftovers):
    listed, and removed unless `dry_run`."""
    found = leftovers.find()
    for left in found:
        print(f"{'would remove' if dry_run else 'removing'} {left}")
    if not dry_run:
        leftovers.remove(found)
    shown = [left for left in found if left.kind != "owner lock"]
    print(f"{'nothing' if not shown else leftovers.summary(shown)} {'to remove' if dry_run else 'removed'}"
          if shown or not found else "nothing left but the lock files of dead owners (removed)")
    return 0


def exec_in(node: str, argv: list[str]) -> int:
    state = load_state()
    if state is None:
        raise LabError("no lab is up (python -m bpflab.lab up)")
    if node not in state["namespaces"]:
        raise LabError(f"no node '{node}' in the {state['topology']} lab (has: {', '.join(state['namespaces'])})")
    if not argv:
        raise LabError("no command given (python -m bpflab.lab exec NODE -- CMD...)")
    # setns without remounting /sys, unlike `ip netns exec`: bpffs pins stay visible.
    setns(open_netns(state["namespaces"][node]))
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        raise LabError(f"command not found: {argv[0]}") from None


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Network-namespace labs for XDP programs.")
    sub = p.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="build a lab")
    p_up.add_argument("topology", nargs="?", default="dnat", choices=sorted(TOPOLOGIES))
    sub.add_parser("status", help="show the lab")
    p_exec = sub.add_parser("exec", help="run a command inside a node")
    p_exec.add_argument("node")
    p_exec.add_argument("cmd", nargs=argparse.REMAINDER)
    sub.add_parser("down", help="remove the lab")
    p_sweep = sub.add_parser("sweep", help="remove what dead owners left (namespaces, pins, processes, loader and "
                                           "tracefs instances)")
    p_sweep.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    sub.add_parser("demo", help="the README's demo")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not lab_name().isidentifier():
        print(f"{PROG}: error: BPFLAB_LAB_NAME must be a word starting with a letter, not {lab_name()!r}", file=sys.stderr)
        return 2
    try:
        if args.command == "up":
            return up(args.topology)
        if args.command == "status":
            return status()
        if args.command == "down":
            return down()
        if args.command == "sweep":
            if os.geteuid() != 0:
                raise LabError("needs root to remove namespaces, pins and processes")
            return sweep(args.dry_run)
        if args.command == "exec":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            return exec_in(args.node, cmd)
        from bpflab.lab import demo

        return demo.main()
    except (LabError, NamespaceNotFound, subprocess.CalledProcessError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
