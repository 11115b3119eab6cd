"""`bpflab verifier stats --baseline`: today's verifier statistics against a
report kept from before, program by program, as veristat's -C joins two
runs (by the object's file name, without its directory, and the program's
name): each stat's baseline value, the new one, the difference and the
percentage. A regression is a program that loaded and is rejected now, or
one whose instructions processed or peak states grew beyond the allowed
percentage; programs added or gone are listed, not failures."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bpflab.tool.stats import KernelStats, ProgramStats, StatsError, as_csv

COMPARED = ("insns", "peak_states", "stack_depth")   # shown, A B diff %
GROWTH_LIMITED = ("insns", "peak_states")            # beyond --max-growth: a regression
DEFAULT_MAX_GROWTH = 10.0


@dataclasses.dataclass(frozen=True)
class Growth:
    program: ProgramStats
    stat: str
    before: int
    now: int

    @property
    def percent(self) -> float:
        return percent(self.before, self.now)


@dataclasses.dataclass
class Comparison:
    baseline_kernel: str
    kernel: str
    rows: list[tuple[ProgramStats, ProgramStats]]   # (baseline, now), matched by object file name and program
    added: list[ProgramStats]
    gone: list[ProgramStats]
    max_growth: float

    def broken(self) -> list[tuple[ProgramStats, ProgramStats]]:
        """Loaded in the baseline, rejected now."""
        return [(base, now) for base, now in self.rows if base.verdict == "loaded" and now.verdict == "rejected"]

    def grown(self) -> list[Growth]:
        """What grew beyond max_growth, in a program that still loads."""
        out = []
        for base, now in self.rows:
            for stat in GROWTH_LIMITED:
                old, new = getattr(base, stat), getattr(now, stat)
                if base.verdict == now.verdict == "loaded" and old is not None and new is not None \
                        and percent(old, new) > self.max_growth:
                    out.append(Growth(now, stat, old, new))
        return out

    @property
    def ok(self) -> bool:
        return not self.broken() and not self.grown()

    def as_json(self) -> dict:
        def stat(base: ProgramStats, now: ProgramStats, name: str) -> dict:
            old, new = getattr(base, name), getattr(now, name)
            both = old is not None and new is not None
            return {"baseline": old, "now": new, "diff": new - old if both else None,
                    "percent": round(percent(old, new), 2) if both else None}

        return {"baseline_kernel": self.baseline_kernel, "max_growth": self.max_growth, "ok": self.ok,
                "programs": [{"object": now.object, "program": now.program, "verdict": {"baseline": base.verdict,
                                                                                       "now": now.verdict},
                              **{name: stat(base, now, name) for name in COMPARED}} for base, now in self.rows],
                "rejected_now": [{"object": now.object, "program": now.program, "log": now.log}
                                 for _, now in self.broken()],
                "grown": [{"object": g.program.object, "program": g.program.program, "stat": g.stat,
                           "baseline": g.before, "now": g.now, "percent": round(g.percent, 2)} for g in self.grown()],
                "added": [f"{p.object}/{p.program}" for p in self.added],
                "gone": [f"{p.object}/{p.program}" for p in self.gone]}


def percent(old: int, new: int) -> float:
    """Growth in percent; from 0, any growth is infinite."""
    if old == 0:
        return 0.0 if new == 0 else float("inf")
    return 100.0 * (new - old) / old


def compare(baseline: KernelStats, now: KernelStats, max_growth: float = DEFAULT_MAX_GROWTH) -> Comparison:
    base = {p.key: p for p in baseline.programs}
    current = {p.key: p for p in now.programs}
    return Comparison(baseline.kernel, now.kernel, [(base[k], current[k]) for k in current if k in base],
                      [current[k] for k in current if k not in base], [base[k] for k in base if k not in current],
                      max_growth)


def read_report(path: Path) -> list[KernelStats]:
    """A report `bpflab verifier stats --json` wrote: one kernel's, or one
    across kernels."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise StatsError(f"--baseline {path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatsError(f"--baseline {path}: not JSON ({exc})") from None
    entries = data.get("kernels") if isinstance(data, dict) and "kernels" in data else [data]
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("programs"), list)
                                                for e in entries):
        raise StatsError(f"--baseline {path}: not a report of bpflab verifier stats --json "
                         f'({{"kernel": ..., "programs": [...]}} or {{"kernels": [...]}})')
    try:
        return [KernelStats.from_json(e) for e in entries]
    except TypeError as exc:
        raise StatsError(f"--baseline {path}: a program entry it cannot read ({exc})") from None


def pair_with_baseline(baseline: list[KernelStats], runs: list[KernelStats]
                       ) -> list[tuple[KernelStats, KernelStats | None]]:
    """Each run with the baseline it is compared against: a report of one
    run on this machine for a run of one kernel (whatever the kernel, as
    veristat compares two files); else the baseline's kernel of the same
    line (6.1 with 6.1), none when it has no such kernel."""
    if len(baseline) == 1 and not baseline[0].version and len(runs) == 1:
        return [(runs[0], baseline[0])]
    by_line = {b.line: b for b in baseline}
    return [(run, by_line.get(run.line)) for run in runs]


# -- as people read it ---------------------------------------------------------------------------------------------

def comparison_table(c: Comparison) -> str:
    def cells(base: ProgramStats, now: ProgramStats, stat: str) -> str:
        old, new = getattr(base, stat), getattr(now, stat)
        if old is None or new is None:
            return f"{'-' if old is None else old:>7} {'-' if new is None else new:>7} {'':>6} {'':>7}"
        pct = percent(old, new)
        shown = f"{pct:+.1f}%" if pct != float("inf") else "new"
        return f"{old:>7} {new:>7} {new - old:>+6} {shown:>7}"

    kernels = c.kernel if c.kernel == c.baseline_kernel else f"{c.baseline_kernel} (baseline) -> {c.kernel}"
    lines = [f"against the baseline, kernel {kernels}, growth allowed {c.max_growth:g}%:",
             f"{'object':<24} {'program':<22} {'verdict':<17}" + "".join(f" | {stat + ': A B diff %':<30}"
                                                                         for stat in COMPARED)]
    grown: dict[tuple, list[str]] = {}
    for g in c.grown():
        grown.setdefault(g.program.key, []).append(g.stat)
    for base, now in c.rows:
        verdict = now.verdict if base.verdict == now.verdict else f"{base.verdict}->{now.verdict}"
        line = f"{now.object:<24} {now.program:<22} {verdict:<17}" + "".join(
            f" | {cells(base, now, stat):<30}" for stat in COMPARED)
        marks = grown.get(now.key)
        lines.append(line + (f"  GREW: {', '.join(marks)}" if marks else ""))
    for _, now in c.broken():
        lines.append(f"REJECTED NOW (loaded in the baseline): {now.object}/{now.program}, kernel {c.kernel}:")
        lines += [f"  | {text}" for text in now.log]
    for g in c.grown():
        shown = f"{g.percent:+.1f}%" if g.percent != float("inf") else "from 0"
        lines.append(f"GREW beyond {c.max_growth:g}%: {g.program.object}/{g.program.program} {g.stat} "
                     f"{g.before} -> {g.now} ({shown}), kernel {c.kernel}")
    lines += [f"added (not in the baseline): {p.object}/{p.program} ({p.verdict})" for p in c.added]
    lines += [f"gone (in the baseline, not now): {p.object}/{p.program}" for p in c.gone]
    lines.append("as the baseline allows" if c.ok else
                 f"REGRESSED: {len(c.broken())} rejected now, {len(c.grown())} grown beyond {c.max_growth:g}%")
    return "\n".join(line.rstrip() for line in lines)


def comparison_csv(c: Comparison) -> str:
    header = ["object", "program", "verdict_baseline", "verdict_now",
              *(f"{stat}_{part}" for stat in COMPARED for part in ("baseline", "now", "diff", "pct"))]
    rows = []
    for base, now in c.rows:
        row = [now.object, now.program, base.verdict, now.verdict]
        for stat in COMPARED:
            old, new = getattr(base, stat), getattr(now, stat)
            both = old is not None and new is not None
            row += ["" if old is None else old, "" if new is None else new, new - old if both else "",
                    f"{percent(old, new):.2f}" if both else ""]
        rows.append(row)
    return as_csv(header, rows)
