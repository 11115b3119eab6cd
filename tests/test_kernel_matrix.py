"""The kernel matrix's plumbing that can be checked without booting a VM
(the matrix itself runs in CI: scripts/test.sh)."""

import pytest

from bpflab.host.waits import patience
from bpflab.kernels.fetch import KernelNotFound, package_for, pick_package
from tests.clitools import run_pytest


def test_kernel_arguments_are_split_from_pytest_arguments():
    from bpflab.kernels.matrix import split_kernels

    assert split_kernels(["--kernel", "6.1", "-k", "dnat", "--kernel=6.12"]) == (["6.1", "6.12"], ["-k", "dnat"])
    assert split_kernels(["-n", "2"]) == ([], ["-n", "2"])
    with pytest.raises(ValueError):
        split_kernels(["--kernel"])


def test_debian_kernel_packages_are_found():
    assert package_for("6.1").startswith("linux-image-6.1.")
    names = ["linux-image-6.1.0-9-amd64", "linux-image-6.1.0-10-amd64", "linux-image-6.1.0-10-cloud-amd64",
             "linux-image-6.1.0-10-rt-amd64", "linux-image-6.1.0-11-amd64-unsigned", "linux-image-6.12.1-amd64"]
    assert pick_package("6.1", names) == "linux-image-6.1.0-10-amd64"
    with pytest.raises(KernelNotFound):
        pick_package("1.2", names)


def test_features_skip_only_on_kernels_older_than_they_are(tmp_path):
    (tmp_path / "test_features.py").write_text(
        "import pytest\n"
        "@pytest.mark.since_kernel('99.0', 'a future feature')\n"
        "def test_future(): pass\n"
        "@pytest.mark.since_kernel('3.0', 'an old feature')\n"
        "def test_old(): assert False, 'runs, so a missing old feature fails'\n")
    result = run_pytest("-rs", "-q", str(tmp_path), f"--rootdir={tmp_path}")
    assert "1 failed, 1 skipped" in result.stdout
    assert "needs a future feature, which kernels before 99.0 lack" in result.stdout


def test_hang_timeouts_scale_with_the_machine(monkeypatch):
    monkeypatch.setenv("BPFLAB_TIME_SCALE", "10")
    assert patience(3) == 30
    monkeypatch.delenv("BPFLAB_TIME_SCALE")
    assert patience(3) == 3
    for bad in ("fast", "0.5"):
        monkeypatch.setenv("BPFLAB_TIME_SCALE", bad)
        with pytest.raises(ValueError, match="BPFLAB_TIME_SCALE must be"):
            patience(3)



def test_a_hanging_test_fails_after_the_scaled_timeout(tmp_path):
    (tmp_path / "test_hang.py").write_text(
        "import time, pytest\n"
        "@pytest.mark.timeout(0.5)\n"
        "def test_hangs(): time.sleep(1000)\n")
    result = run_pytest("-q", str(tmp_path), f"--rootdir={tmp_path}",
                        env={"BPFLAB_TIME_SCALE": "2"})
    assert "1 failed" in result.stdout
    assert "Timeout (>1.0s) from pytest-timeout" in result.stdout
