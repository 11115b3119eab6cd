"""The `bpflab` command: test anyone's XDP or tc program.

    bpflab run OBJ --pcap IN [--out OUT.pcapng] [--prog NAME] [--map NAME=FILE.json] [--json]
    bpflab csum OBJ [--prog NAME] [--examples N] [--seed S] [--map NAME=FILE.json] [--out-dir DIR] [--json]
    bpflab verifier corpus DIR [--clang CLANG]        (bpflab verifier DIR: the same)
    bpflab verifier stats OBJ... [--json | --csv] [--output FILE] [--baseline FILE [--max-growth PCT]]
                                 [--kernel VERSION]... [-j N] [--out DIR] [--timeout S]
    bpflab kernels [--kernel VERSION]... [-j N] [--out DIR] [--timeout S] [-- COMMAND [ARG...]]
    bpflab include-dir

A program that asks the kernel's routing (bpf_fib_lookup) runs in a network
namespace that has the routes: --netns NS [--ifindex N], or --lab TOPOLOGY
(a lab bpflab builds for the run: dnat, pair; NODE:IFACE default lb:eth0,
right:eth0).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path

from bpflab.host.commandline import EXIT_USAGE, OneLineParser, describe, output_dir, output_file, positive_int
from bpflab.host.interrupts import run_command
from bpflab.host.netns import InterfaceNotFound, NamespaceNotFound, ifindex
from bpflab.libbpf import BpfError
from bpflab.libbpf.btf_codec import EncodeError
from bpflab.tool.target import Target, TargetError

# run and csum alike: 1 a bad checksum, 3 nothing the program changed to
# check (csum), 4 something it changed that could not be judged (and none bad).
EXIT_BAD_CHECKSUM, EXIT_NOTHING_CHECKED, EXIT_UNCHECKED = 1, 3, 4
LAB_DEFAULTS = {"dnat": ("lb", "eth0"), "pair": ("right", "eth0")}


def add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("obj", metavar="OBJ", type=Path, help="the BPF object (clang -target bpf -g)")
    p.add_argument("--prog", metavar="NAME", help="the XDP or tc program (default: the only one)")
    p.add_argument("--map", action="append", default=[], metavar="NAME=FILE.json",
                   help='fill map NAME first: a JSON list of {"key": ..., "value": ...} by field name (repeatable)')
    where = p.add_mutually_exclusive_group()
    where.add_argument("--netns", metavar="NS", help="run inside this network namespace (for the FIB)")
    where.add_argument("--lab", metavar="TOPOLOGY[:NODE:IFACE]",
                       help="build this lab topology and run in NODE, as if frames arrived on IFACE")
    p.add_argument("--ifindex", type=int, metavar="N", help="the ingress interface frames arrive on (XDP)")


def add_tunnel_port_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tunnel-port", type=int, action="append", default=[], metavar="PORT",
                   help="a UDP port of a tunnel that may send UDP checksum 0 over IPv6 (RFC 6935: VXLAN 4789, "
                        "GENEVE 6081); elsewhere 0 is wrong over IPv6 (repeatable)")


def add_states_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--states", metavar="STATE,...",
                   help="tc programs: the checksum states to hand packets over in, of none, complete, partial "
                        "(default: every state this kernel and machine can run; the report says which were left out)")


@contextlib.contextmanager
def opened_target(args):
    """(the target, the lab's (ingress endpoint, its peer) or None), inside
    --netns or a lab built for the run."""
    lab, ends = None, None
    netns, index = args.netns, args.ifindex
    try:
        if args.lab:
            from bpflab.lab import TOPOLOGIES, build

            name, _, where = args.lab.partition(":")
            if name not in TOPOLOGIES:
                raise TargetError(f"--lab {name}: no such topology (has: {', '.join(sorted(TOPOLOGIES))})")
            node, _, iface = where.partition(":") if where else ("", "", "")
            node, iface = node or LAB_DEFAULTS.get(name, ("", ""))[0], iface or LAB_DEFAULTS.get(name, ("", ""))[1]
            lab = build(TOPOLOGIES[name]())
            netns = lab.netns(node)
            index = index or ifindex(iface, netns)
            ends = (lab.endpoint(node, iface), lab.topology.peer(node, iface))
        with Target(args.obj, prog=args.prog, maps=args.map, netns=netns, ifindex=index) as target:
            yield target, ends
    finally:
        if lab is not None:
            lab.teardown()


def cmd_run(args) -> int:
    from bpflab.tool.replay import read_frames, replay, write_pcapng

    frames = read_frames(args.pcap)
    with opened_target(args) as (target, _ends):
        states, left_out = chosen_states(args, target)
        results = replay(target, frames, states, udp6_zero_ports=tuple(args.tunnel_port))
    for r in results:
        print(json.dumps(r.as_json()) if args.json else r.line())
    verdicts = Counter(r.verdict for r in results)
    bad = sum(r.bad for r in results)
    unchecked = sum(r.gap for r in results)
    in_states = ""
    if target.kind == "tc":
        in_states = f" (checksum states: {', '.join(states)}" + "".join(
            f"; left out: {state} ({why})" for state, why in left_out.items()) + ")"
    summary = (f"{len(results)} frames: " + ", ".join(f"{n} {v}" for v, n in verdicts.most_common())
               + f"; {sum(1 for r in results if r.changed)} changed, {bad} with a bad checksum, {unchecked} not checked"
               + in_states)
    print(summary, file=sys.stderr)
    if args.out:
        write_pcapng(args.out, results)
        print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_BAD_CHECKSUM if bad else EXIT_UNCHECKED if unchecked else 0


def cmd_csum(args) -> int:
    import tempfile

    from hypothesis.configuration import set_hypothesis_home_dir, storage_directory

    # Hypothesis keeps a directory (.hypothesis) in the working directory: a
    # command must not leave one in the user's.
    previous = storage_directory(intent_to_write=False).home_directory
    with tempfile.TemporaryDirectory(prefix="bpflab-csum-") as home:
        set_hypothesis_home_dir(home)
        try:
            return csum(args)
        finally:
            set_hypothesis_home_dir(previous)


def csum(args) -> int:
    from bpflab.tool.csum import check, pool_from_maps
    from bpflab.tool.edges import Pool, TargetSyntaxError, named

    with opened_target(args) as (target, ends):
        states, left_out = chosen_states(args, target)
        pool = Pool()
        if ends is not None:  # frames come from the ingress interface's peer
            me, peer = ends
            pool = Pool(src_mac=peer.mac, dst_mac=me.mac, sources=tuple(a for a in (peer.ip, peer.ip6) if a))
        pool = pool_from_maps(target, pool)
        try:
            pool = dataclasses.replace(named(pool, args.target), families=FAMILY_CHOICES[args.family])
        except TargetSyntaxError as exc:
            raise TargetError(str(exc)) from None
        if not pool.aimed_families:
            raise TargetError(f"--family {args.family}: no destination of that family to aim at (the maps and "
                              "--target give none)")
        kind = f"{target.program.name} ({target.kind})"
        if not args.json:
            print(f"bpflab csum {args.obj}: program {kind}, {args.examples} frames aimed at "
                  f"{', '.join(pool.destinations)} ports {', '.join(map(str, pool.ports))}", flush=True)
            if target.kind == "tc":
                print(f"  checksum states: {', '.join(states)}"
                      + "".join(f"; left out: {state} ({why})" for state, why in left_out.items()), flush=True)
        report = check(target, examples=args.examples, seed=args.seed, pool=pool, states=states, left_out=left_out,
                       udp6_zero_ports=tuple(args.tunnel_port))
    if args.json:
        written = write_failure_pcaps(report.failure, args.out_dir) if report.failure is not None else []
        print(json.dumps({"object": str(args.obj), "program": target.program.name, "kind": target.kind,
                          **report.as_json(), "written": written}))
        return csum_status(report)
    print(f"  probes changed: {describe_targets(report.targets) or 'none (frames go to the whole pool)'}"
          + (f"; named by hand: {describe_targets(report.named)}" if report.named else ""))
    by_state = target.kind == "tc"
    checked_columns = "".join(f"{state:>10}" for state in report.states) if by_state else f"{'checked':>9}"
    print(f"  {'edge':<18}{'frames':>8}{'aimed':>8}{'changed':>9}{checked_columns}{'unchecked':>11}")
    for edge, c in report.edges.items():
        checked = "".join(f"{c.states[state]:>10}" for state in report.states) if by_state else f"{c.checked:>9}"
        print(f"  {edge:<18}{c.frames:>8}{c.aimed:>8}{c.changed:>9}{checked}{c.unchecked:>11}")
    if by_state:
        print("  (the state columns: changed frames checked in each checksum state)")
    if report.failure is not None:
        return report_failure(report, args)
    status = csum_status(report)
    if status == EXIT_NOTHING_CHECKED:
        print(f"{report.frames} frames, none changed by the program: its checksums were checked for nothing. "
              "Fill the maps that steer it (--map) or aim at what it acts on (--target).", file=sys.stderr)
        return status
    in_states = f" in checksum state{'s' * (len(report.states) > 1)} {', '.join(report.states)}" if by_state else ""
    if status == EXIT_UNCHECKED:
        reasons = "; ".join(f"{n}: {why}" for why, n in report.reasons().items())
        print(f"{report.frames} frames, {report.changed} changed by the program, {report.checked} checked{in_states}, "
              f"every one of them right; {report.unchecked} NOT CHECKED ({reasons}).")
        return status
    print(f"{report.frames} frames, {report.changed} changed by the program, {report.checked} checked{in_states}: "
          "every checksum right.")
    return 0


def csum_status(report) -> int:
    if report.failure is not None:
        return EXIT_BAD_CHECKSUM
    if report.unchecked:
        return EXIT_UNCHECKED
    return EXIT_NOTHING_CHECKED if report.checked == 0 else 0


PROTOCOL_NAMES = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6"}


def describe_targets(targets) -> str:
    return ", ".join(f"{bracketed(dst)}:{port}/{PROTOCOL_NAMES[proto]}" if port else f"{dst} {PROTOCOL_NAMES[proto]}"
                     for dst, port, proto in targets)


FAMILY_CHOICES = {"4": (4,), "6": (6,), "both": (4, 6)}


def bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def chosen_states(args, target) -> tuple[tuple[str, ...], dict[str, str]]:
    """The checksum states to run (bpflab.tool.states), from --states."""
    from bpflab.tool.states import StateError, choose, parse

    try:
        asked = parse(args.states) if args.states else None
        return choose(target.kind, asked, in_namespace=bool(args.netns or args.lab))
    except StateError as exc:
        raise TargetError(str(exc)) from None


STATE_NAMES = {"none": "CHECKSUM_NONE", "complete": "CHECKSUM_COMPLETE", "partial": "CHECKSUM_PARTIAL"}


def write_failure_pcaps(failure, out_dir: str) -> list[str]:
    """The failing input and what the program sent, as pcaps: their paths."""
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "csum-failure-input.pcap", out / "csum-failure-output.pcap"]
    for path, frame in zip(paths, (failure.case.frame, failure.output), strict=True):
        wrpcap(str(path), [Ether(frame)] if frame else [])
    return [str(p) for p in paths]


def report_failure(report, args) -> int:
    import scapy.layers.inet  # noqa: F401 - binds IP, TCP, UDP, ICMP under Ether
    from scapy.layers.l2 import Ether

    f = report.failure
    written = write_failure_pcaps(f, args.out_dir)
    state = f" in {STATE_NAMES[f.state]}" if report.kind == "tc" else ""
    where = {"middle": " (as it left, still partial)", "sink": " (once a kernel completed it)"}.get(f.where, "")
    if f.verdict == "REFUSED":
        what = f"the kernel refused what the program left: {f}"
    elif f.state == "partial":
        what = f"the program let a frame out at egress with {f}{where}"
    else:
        what = f"the program ({f.verdict}) sent a frame with {f}"
    print(f"FAILED{state}: {what} (edge {f.case.edge})")
    for problem in f.problems:
        print(f"  field: {problem.detail()}")
    print(f"  smallest failing input found ({len(f.case.frame)} bytes): {Ether(f.case.frame).summary()}")
    print(f"    {f.case.frame.hex()}")
    print(f"  written: {', '.join(written)}")
    print(f"{report.frames} frames before the failure, {report.changed} changed, {report.checked} checked.")
    return EXIT_BAD_CHECKSUM


def cmd_verifier(args) -> int:
    from bpflab.tool.verifier import CorpusError, run_corpus

    try:
        return run_corpus(Path(args.dir), clang=args.clang)
    except CorpusError as exc:
        raise TargetError(str(exc)) from None


def cmd_verifier_stats(args) -> int:
    from bpflab.tool.stats import StatsError
    from bpflab.tool.stats_command import run

    try:
        return run(args)
    except StatsError as exc:
        raise TargetError(str(exc)) from None


def cmd_kernels(args) -> int:
    from bpflab.kernels.cli import KernelsError, run

    try:
        return run(args)
    except KernelsError as exc:
        raise TargetError(str(exc)) from None


def cmd_include_dir(_args) -> int:
    from bpflab.tool.verifier import INCLUDE_DIR

    print(INCLUDE_DIR)
    return 0


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="bpflab", description="Test your own XDP or tc program: replay captures, check "
                                                 "checksums at the edges, fill maps from JSON, verifier corpora.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="every frame of a pcap/pcapng through the program",
                         description="Every frame of a pcap or pcapng through the program (BPF_PROG_TEST_RUN): one "
                                     "line per frame with its verdict, the header fields it changed and whether the "
                                     "checksums it sent are right.")
    add_target_args(run)
    run.add_argument("--pcap", required=True, metavar="IN", help="the frames (pcap or pcapng, Ethernet)")
    run.add_argument("--out", type=output_file, metavar="OUT.pcapng", help="write what the program sent, each with its verdict as a comment")
    add_states_arg(run)
    add_tunnel_port_arg(run)
    run.add_argument("--json", action="store_true", help="one JSON object per frame")
    run.set_defaults(func=cmd_run)
    csum = sub.add_parser("csum", help="check the program's checksums on frames aimed at the edges",
                          description="Frames aimed at the edges of one's complement checksums through the program, "
                                      "IPv4 and IPv6; every frame it changes must carry right IPv4, TCP, UDP, ICMP "
                                      "and ICMPv6 checksums. Exit 1 with the smallest failing input (written as "
                                      "pcap), 3 if the program changed no frame (nothing was checked), 4 if some "
                                      "frame it changed could not be judged (and none was wrong), 0 otherwise.")
    add_target_args(csum)
    csum.add_argument("--examples", type=positive_int, default=1000, metavar="N", help="frames to try (default 1000)")
    csum.add_argument("--seed", type=int, metavar="S", help="a random seed (default: the same frames every run)")
    csum.add_argument("--out-dir", type=output_dir, default=".", metavar="DIR", help="where a failure's pcaps go (default .)")
    add_states_arg(csum)
    add_tunnel_port_arg(csum)
    csum.add_argument("--family", choices=sorted(FAMILY_CHOICES), default="both",
                      help="aim IPv4 frames, IPv6 frames or both (default both)")
    csum.add_argument("--target", action="append", default=[], metavar="ADDRESS[:PORT][/PROTO]",
                      help="aim at what the program acts on by hand, when its maps do not say (constants in its "
                           "code): 10.96.0.10:80/tcp, [fd00::10]:53/udp, 192.0.2.1/icmp (repeatable)")
    csum.add_argument("--json", action="store_true", help="the report as one JSON object (same exit codes)")
    csum.set_defaults(func=cmd_csum)
    ver = sub.add_parser("verifier", help="what the verifier says: a corpus of annotated programs (corpus), how "
                                          "hard it works on your objects and how that moved (stats)",
                         description="The verifier's side of your programs. corpus: programs that must be rejected "
                                     "with a message, or load (and return a value). stats: veristat's numbers for "
                                     "every program of your objects, against a baseline, on other kernels.")
    vsub = ver.add_subparsers(dest="verifier_command", required=True, parser_class=OneLineParser)
    corpus = vsub.add_parser("corpus", help="the annotated verifier corpus of a directory",
                             description="Build every .bpf.c source in DIR (with `bpflab include-dir` on the include path), "
                                         "load each program alone and compare with its __failure/__success/__msg/"
                                         "__regex/__retval annotations (<bpflab/annotations.h>). `bpflab verifier "
                                         "DIR` is the same command.")
    corpus.add_argument("dir", metavar="DIR")
    corpus.add_argument("--clang", default="clang", help="the compiler (default clang)")
    corpus.set_defaults(func=cmd_verifier)
    stats = vsub.add_parser("stats", help="the verifier's statistics of every program, against a baseline, across "
                                          "kernels",
                            description="Load every program of every OBJ alone, the way libbpf loads it, and report "
                                        "what the verifier did (veristat's numbers: verdict, instructions processed, "
                                        "total and peak states, max states per instruction, stack depth, "
                                        "verification time) and bpf_prog_info's (xlated and jited size, verified "
                                        "instructions). Exit 0; 1 when, against --baseline, a program that loaded is "
                                        "rejected now or grew beyond --max-growth, or a kernel gave no statistics; "
                                        "2 on unusable input.")
    from bpflab.tool.stats_command import add_arguments as add_stats_arguments

    add_stats_arguments(stats)
    stats.set_defaults(func=cmd_verifier_stats)
    kernels = sub.add_parser("kernels", help="your tests, or any command, on other kernels (each in a VM)",
                             description="Run COMMAND (default: pytest) in the current directory inside a VM booted "
                                         "with each kernel from Debian's archive (virtme-ng; KVM when it works, "
                                         "emulation when not). Results: --out DIR/results.json, junit-VERSION.xml "
                                         "(pytest), console-VERSION.log. Exit 0 only when every kernel passed; 1 "
                                         "when one failed or could not run; 2 bad input.")
    from bpflab.kernels.cli import add_arguments

    add_arguments(kernels)
    kernels.set_defaults(func=cmd_kernels)
    inc = sub.add_parser("include-dir", help="where <bpflab/annotations.h> is, for -I",
                         description="Print the directory to pass to clang with -I for <bpflab/annotations.h>.")
    inc.set_defaults(func=cmd_include_dir)
    return p


def main(argv: list[str] | None = None) -> int:
    import logging

    args = parser().parse_args(old_forms(sys.argv[1:] if argv is None else argv))
    # libbpf's own diagnostics go to the "libbpf" logger; what matters of
    # them (a verifier's log, libbpf's reason) is in the errors we report.
    logging.getLogger("libbpf").setLevel(logging.CRITICAL)
    try:
        return args.func(args)
    except (TargetError, EncodeError) as exc:
        print(f"{command_name(args)}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (BpfError, NamespaceNotFound, InterfaceNotFound, FileNotFoundError) as exc:
        print(f"{command_name(args)}: error: {describe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0


VERIFIER_COMMANDS = ("corpus", "stats", "-h", "--help")


def old_forms(argv: list[str]) -> list[str]:
    """`bpflab verifier DIR` (before the verifier had subcommands) is
    `bpflab verifier corpus DIR`."""
    if argv[:1] == ["verifier"] and len(argv) > 1 and argv[1] not in VERIFIER_COMMANDS:
        return ["verifier", "corpus", *argv[1:]]
    return argv


def command_name(args) -> str:
    return " ".join(["bpflab", args.command, *([args.verifier_command] if args.command == "verifier" else [])])


def entry() -> None:
    """The console script: main() as a command, which SIGINT and SIGTERM
    stop with one line and 130 or 143 (bpflab.host.interrupts)."""
    words = [w for w in old_forms(sys.argv[1:])[:2] if not w.startswith("-")]
    words = words[:2] if words[:1] == ["verifier"] else words[:1]
    sys.exit(run_command(" ".join(["bpflab", *words]), main))


if __name__ == "__main__":
    entry()
