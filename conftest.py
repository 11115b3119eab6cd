"""Root conftest: Hypothesis has two profiles. The lab's fixtures and the
kernel-test rules come with the installed plugin (the pytest11 entry point
"bpflab", bpflab.lab.pytest_plugin), for this suite as for anyone's."""
import os

from hypothesis import settings

# A fixed CI profile (the same examples every run) and a longer opt-in one:
#   HYPOTHESIS_PROFILE=long nox -s kernel
settings.register_profile("ci", max_examples=300, derandomize=True, deadline=None, print_blob=True)
settings.register_profile("long", max_examples=20000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
