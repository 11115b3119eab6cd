"""test_run_ns_without: where xdp_dnat's nanoseconds above the floor go.

The floor with its next hop kept (floor_dnat_nexthop) does what any DNAT
must: the service's lookup, the rewrite, the MACs, the redirect. xdp_dnat
does more, each for a reason (docs/explanation/scale.md). Each part below
is taken out of a copy of bpf/xdp_dnat.bpf.c (a text replacement that must
occur exactly once, as tests/mutants.py applies them), the copy built with
the Makefile's own flags and measured exactly as `test_run_ns.xdp_dnat`
(an established flow, next hops kept): the difference is what that part
costs. "all" takes every part out together. These builds are measurements
only, never a program anyone runs: without them xdp_dnat is wrong (see
each part's reason).
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

from bpflab.host.paths import REPO_ROOT

SOURCE = "xdp_dnat.bpf.c"


@dataclasses.dataclass(frozen=True)
class Part:
    id: str
    why: str  # what the program keeps it for
    old: str
    new: str


PARTS = (
    Part("reply_check", "the reply entry checked on every established packet: a client port reused for another "
         "service of the same backend, or a reply entry evicted alone, gets its replies right again",
         "	} else {\n		replied_as = bpf_map_lookup_elem(&dnat_replies, &reply);",
         "	} else if (0) {\n		replied_as = bpf_map_lookup_elem(&dnat_replies, &reply);"),
    Part("slot_owner", "the pinned slot still belongs to the flow's service: a slot freed and reused by another "
         "service never takes the old flow's packets",
         "	if (!be || be->service.vip != svc->vip || be->service.port != svc->port ||\n"
         "	    be->service.proto != svc->proto)\n",
         "	if (!be)\n"),
    Part("verdict_counter", "packets per verdict (`stats`)",
         "	__u64 *n = bpf_map_lookup_elem(&dnat_verdicts, &verdict);\n\n	if (n)\n		*n += 1;\n	return action;",
         "	return action;"),
    Part("backend_counter", "packets per backend (`service list`)",
         "	sent = bpf_map_lookup_elem(&backend_packets, &id);\n", "	sent = NULL;\n"),
)


def variant_source(text: str, parts: tuple[Part, ...]) -> str:
    for part in parts:
        if text.count(part.old) != 1:
            raise RuntimeError(f"ablation {part.id}: its text occurs {text.count(part.old)} times in {SOURCE}, "
                               f"not once: update bench/ablation.py")
        text = text.replace(part.old, part.new)
    return text


def build(parts: tuple[Part, ...], work: Path) -> Path:
    """xdp_dnat without `parts`, built in `work`; returns the object's path."""
    src, out = work / "bpf", work / "build"
    shutil.copytree(REPO_ROOT / "bpf", src)
    program = src / SOURCE
    program.write_text(variant_source(program.read_text(), parts))
    obj = out / SOURCE.replace(".c", ".o")
    made = subprocess.run(["make", "-s", f"SRC={src}", f"BUILD={out}", str(obj)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    if made.returncode != 0:
        raise RuntimeError(f"ablation build failed: {made.stderr.strip()[-2000:]}")
    return obj


def variants() -> dict[str, tuple[Part, ...]]:
    """name: the parts it takes out (the two counters together)."""
    by_id = {p.id: p for p in PARTS}
    return {"reply_check": (by_id["reply_check"],), "slot_owner": (by_id["slot_owner"],),
            "counters": (by_id["verdict_counter"], by_id["backend_counter"]), "all": PARTS}


def built(work: Path) -> dict[str, Path]:
    """Every variant's object, built under `work`."""
    return {name: build(parts, work / name) for name, parts in variants().items()}
