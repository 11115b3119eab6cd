"""Root conftest: Hypothesis has its profiles, and the suite asks for
bpflab's session guard (the leak check, the root-namespace snapshot, the
default timeout: bpflab.lab.pytest_guard). The lab's fixtures and the
kernel-test markers come with the installed plugin (the pytest11 entry
point "bpflab", bpflab.lab.pytest_plugin), for this suite as for anyone's."""
import os

from hypothesis import settings

pytest_plugins = ["bpflab.lab.pytest_guard"]

# A fixed CI profile (the same examples every run), a longer opt-in one:
#   HYPOTHESIS_PROFILE=long nox -s kernel
# and a shorter one the kernel matrix sets inside emulated VMs, where every
# example costs 10-20x: fewer random examples, every aimed edge still hit
# (tests/test_xdp_dnat_checksums.py keeps at least 10 per edge).
settings.register_profile("ci", max_examples=300, derandomize=True, deadline=None, print_blob=True)
settings.register_profile("long", max_examples=20000, deadline=None, print_blob=True)
settings.register_profile("vm", max_examples=100, derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
