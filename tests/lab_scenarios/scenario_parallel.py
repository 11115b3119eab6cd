"""Run by test_lab.py with -n 2: workers build labs side by side."""
import pytest

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("i", range(6))
def test_dnat_lab_builds_and_reaches(dnat_lab, i):
    assert dnat_lab.run("client", ["ping", "-c1", "-W2", "10.0.1.1"]).returncode == 0
    assert dnat_lab.run("backend", ["ping", "-c1", "-W2", "10.244.1.1"]).returncode == 0
