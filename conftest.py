"""Root conftest: the lab's fixtures and the kernel-test rules apply to the
whole suite (see lab/pytest_plugin.py, bpflab.lab.pytest_plugin), and Hypothesis has two profiles."""
import os

from hypothesis import settings

pytest_plugins = ["bpflab.lab.pytest_plugin"]

# A fixed CI profile (the same examples every run) and a longer opt-in one:
#   HYPOTHESIS_PROFILE=long nox -s kernel
settings.register_profile("ci", max_examples=300, derandomize=True, deadline=None, print_blob=True)
settings.register_profile("long", max_examples=20000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
