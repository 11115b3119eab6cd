"""Results pages made from the files runs write, never typed by hand:

    ```{kernel-matrix-results}
    ```
renders docs/results/kernel-matrix/results.json (what `nox -s kernel --
--kernel ...` writes: one line per kernel, with its date and command), and

    ```{bench-results}
    ```
renders docs/results/bench.json (`nox -s bench`). A missing file is said
on the page, with the command that writes it."""
from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

RESULTS = Path(__file__).resolve().parent.parent / "results"


def table(header: list[str], rows: list[list]) -> list[str]:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows), ""]


def kernel_matrix(data: dict) -> list[str]:
    lines = [f"Written {data.get('date', '?')} on a machine running {data.get('host_kernel', '?')}, "
             f"{'software emulation' if data.get('emulated') else 'KVM'}, {data.get('jobs', '?')} VM(s) at once.", ""]
    rows = []
    for k in data.get("kernels", []):
        counts = (f"{k.get('passed', 0)} passed, {k.get('skipped', 0)} skipped, {k.get('failed', 0)} failed"
                  + (f", {k['errors']} errors" if k.get("errors") else "")) if k.get("junit") else \
            f"exit {k.get('exit')}"
        rows.append([f"`{k['version']}`", k.get("release", ""), k.get("status", "").upper(), counts,
                     f"{k.get('seconds', 0) / 60:.1f} min", k.get("date", ""), f"`{' '.join(k.get('command', []))}`"])
    lines += table(["asked as", "kernel", "status", "tests", "time", "date", "command"], rows)
    reasons = [(k["version"], reason, n) for k in data.get("kernels", [])
               for reason, n in k.get("skipped_reasons", {}).items()]
    if reasons:
        lines += ["Why tests were skipped (a feature the kernel predates, by its `since_kernel` marker):", ""]
        lines += table(["kernel", "skipped because", "tests"], [[f"`{v}`", r, n] for v, r, n in reasons])
    notes = [(k["version"], k["note"]) for k in data.get("kernels", []) if k.get("note")]
    if notes:
        lines += ["Notes:", "", *(f"- `{v}`: {note}" for v, note in notes), ""]
    return lines


def bench(data: dict) -> list[str]:
    lines = [f"Written {data.get('date', '?')} on {data.get('machine', {}).get('kernel', data.get('kernel', '?'))}.",
             ""]
    test_run = data.get("test_run_ns", {})
    if test_run:
        base = test_run.get("baseline")
        floor = test_run.get("floor_dnat")
        lines += ["Per-packet cost under `BPF_PROG_TEST_RUN` (median of rounds):", ""]
        lines += table(["program", "ns", "x baseline", "x floor"],
                       [[name, ns, f"{ns / base:.2f}" if base else "", f"{ns / floor:.2f}" if floor else ""]
                        for name, ns in test_run.items()])
    without = dict(data.get("test_run_ns_without", {}))
    if "none" in without:
        whole = without.pop("none")
        lines += ["xdp_dnat whole and with one part taken out (`bench/ablation.py`), the floor with its next hop "
                  "kept, measured as `xdp_dnat` is in rounds that take each in turn: what each part costs per "
                  "packet:", ""]
        lines += table(["build", "ns", "against xdp_dnat whole (ns)"],
                       [["xdp_dnat whole", whole, ""]]
                       + [[name if name == "floor_dnat_nexthop" else f"without {name}", ns, f"{ns - whole:+.0f}"]
                          for name, ns in without.items()])
    lab = data.get("lab_mpps", {})
    if lab:
        nft = lab.get("nft_dnat", {}).get("median_mpps")
        lines += ["Through the `dnat` lab (one UDP flow, client to VIP to backend):", ""]
        lines += table(["datapath", "Mpps", "spread %", "x nftables", "delivered %"],
                       [[name, r.get("median_mpps"), r.get("spread_pct"),
                         f"{r['median_mpps'] / nft:.2f}" if nft and r.get("median_mpps") else "",
                         r.get("delivered_pct")] for name, r in lab.items()])
    lines += scale(data)
    goals = data.get("goals", [])
    if goals:
        lines += ["Goals, judged on this run's own figures:", ""]
        lines += table(["goal", "value", "target", "met", "why not (measured)"],
                       [[g["goal"], g["value"], g["target"], "yes" if g["met"] else "no",
                        "" if g["met"] else g.get("why", "")] for g in goals])
    rest = {k: v for k, v in data.items()
            if k not in ("test_run_ns", "test_run_ns_without", "lab_mpps", "goals", "date", "machine", "scale")}
    if rest:
        lines += ["The other figures, as the run wrote them:", "", "```json",
                  *json.dumps(rest, indent=2).splitlines(), "```", ""]
    return lines


def scale(data: dict) -> list[str]:
    """xdp_dnat as the cluster grows (bench.json's `scale`), if the run measured it."""
    found = data.get("scale")
    if not found:
        return []
    lines = ["xdp_dnat as the cluster grows (tables of 16381 entries, 10 backends a service; per packet: "
             "test-run of one frame at a time, 1,000 flows a round, the median over five rounds that take "
             "every instance in turn):", ""]
    lines += table(["services", "backends", "programmed in (s)", "one backend added (ms: median of 5, slowest)",
                    "kernel memory (MB)",
                    "per service (bytes)", "new flow (ns)", "established (ns)"],
                   [[f"{r['services']:,}", f"{r['backends']:,}", r["program_s"],
                     f"{r['add_backend_ms']}, {r.get('add_backend_max_ms', '-')}",
                     f"{r['kernel_bytes'] / 1e6:.1f}", f"{r['kernel_bytes'] / r['services']:,.0f}",
                     r["xdp_dnat_ns"]["new"], r["xdp_dnat_ns"]["established"]] for r in found["services"]])
    lab = [r for r in found["services"] if "nft_ns" in r]
    if lab:
        lines += ["Per packet in the `dnat` lab when every packet is a new connection, beyond the generator's own "
                  "cost (ns); kube-proxy's two modes for the same services, and the time their rules took to load:",
                  ""]
        lines += table(["services", "xdp_dnat (ns)", "nftables (ns)", "iptables (ns)", "nftables loaded in (s)",
                        "iptables loaded in (s)"],
                       [[f"{r['services']:,}", r["xdp_dnat_lab_ns"], r["nft_ns"], r["iptables_ns"],
                         r["nft_program_s"], r["iptables_program_s"]] for r in lab])
    lines += table(["flows pinned", "established (ns)"],
                   [[f"{r['flows']:,}", r["established_ns"]] for r in found.get("flows", [])])
    return lines


class ResultsDirective(SphinxDirective):
    path: Path
    command: str

    def render(self, data: dict) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(self.path))
        if not self.path.exists():
            text = [f"No results recorded in `{self.path.relative_to(RESULTS.parent.parent)}` yet: "
                    f"`{self.command}` writes them."]
        else:
            text = self.render(json.loads(self.path.read_text()))
        container = nodes.container()
        self.state.nested_parse(StringList(text, source=str(self.path)), self.content_offset, container)
        return container.children


class KernelMatrixResults(ResultsDirective):
    path = RESULTS / "kernel-matrix" / "results.json"
    command = "nox -s kernel -- --kernel matrix"

    def render(self, data: dict) -> list[str]:
        return kernel_matrix(data)


class BenchResults(ResultsDirective):
    path = RESULTS / "bench.json"
    command = "nox -s bench"

    def render(self, data: dict) -> list[str]:
        return bench(data)


class ScaleResults(BenchResults):
    def render(self, data: dict) -> list[str]:
        found = scale(data)
        if not found:
            return [f"The latest bench run did not measure it: `{self.command} -- --only scale` does."]
        goals = [g for g in data.get("goals", []) if g.get("part") == "scale"]
        return [f"Written {data.get('date', '?')} on {data.get('kernel', '?')}.", "", *found,
                *table(["goal", "value", "target", "met", "why not (measured)"],
                       [[g["goal"], g["value"], g["target"], "yes" if g["met"] else "no",
                        "" if g["met"] else g.get("why", "")] for g in goals])]


def setup(app):
    app.add_directive("kernel-matrix-results", KernelMatrixResults)
    app.add_directive("bench-results", BenchResults)
    app.add_directive("scale-results", ScaleResults)
    return {"parallel_read_safe": True, "version": "1"}
