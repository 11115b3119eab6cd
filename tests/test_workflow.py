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
