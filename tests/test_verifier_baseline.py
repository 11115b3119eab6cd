"""This repository guards its own programs with bpflab verifier stats: on
the kernel the suite runs on (the host, or each kernel of the matrix in its
VM), no program under bpf/, bench/bpf/ or examples/ may stop loading or
grow more than 10 % in instructions processed or peak states against its
line's baseline (tests/verifier_baseline.json). Updating the baseline after
a change meant to grow: nox -s verifier_baseline."""
import json
import os

import pytest

from bpflab.kernels.matrix import MATRIX_KERNELS
from bpflab.tool.stats import KernelStats, collect, kernel_line, this_kernel
from bpflab.tool.stats_compare import compare, comparison_table, read_report
from tests import verifier_baseline

UPDATE = "nox -s verifier_baseline (-- --kernel host for this machine's line alone)"


def baseline_of_this_line() -> KernelStats:
    line = kernel_line(os.uname().release)
    kept = read_report(verifier_baseline.BASELINE)
    entry = next((k for k in kept if k.line == line), None)
    if entry is None:
        pytest.skip(f"no verifier baseline of the {line} line in tests/verifier_baseline.json (it has "
                    f"{', '.join(k.line for k in kept)}): {UPDATE} records one")
    return entry


@pytest.mark.kernel
def test_no_program_of_this_repository_grew_or_stopped_loading():
    base = baseline_of_this_line()
    now = this_kernel(collect(verifier_baseline.objects()))
    c = compare(base, now, verifier_baseline.MAX_GROWTH)
    built_by = json.loads(verifier_baseline.BASELINE.read_text())["objects_built_by"]
    clang = verifier_baseline.clang_version()
    note = "" if clang == built_by else f"\n(the baseline's objects were built by {built_by}, these by {clang})"
    assert c.ok, f"{comparison_table(c)}\nif that is meant: {UPDATE}{note}"
    # Every program is in the baseline, and every program of it is still here.
    assert not c.added and not c.gone, f"{comparison_table(c)}\nrecord them: {UPDATE}"


def test_the_docs_table_is_the_baseline():
    baseline = json.loads(verifier_baseline.BASELINE.read_text())
    assert verifier_baseline.TABLE.read_text() == verifier_baseline.table(baseline), \
        f"docs/reference/verifier-baseline.md is not generated from the baseline: {UPDATE}"


def test_the_baseline_covers_the_matrix():
    versions = [k["version"] for k in json.loads(verifier_baseline.BASELINE.read_text())["kernels"]]
    assert versions == list(MATRIX_KERNELS)
