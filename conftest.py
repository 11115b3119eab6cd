"""Root conftest: Hypothesis has its profiles, the suite asks for bpflab's
session guard (the leak check, the root-namespace snapshot, the default
timeout: bpflab.lab.pytest_guard), and in a VM of the kernel matrix
(BPFLAB_IN_VM, which `bpflab kernels` sets in every guest) it runs only the
tests whose outcome can depend on the kernel. The lab's fixtures and the
kernel-test markers come with the installed plugin (the pytest11 entry
point "bpflab", bpflab.lab.pytest_plugin), for this suite as for anyone's."""
import os

from hypothesis import settings

pytest_plugins = ["bpflab.lab.pytest_guard"]
IN_VM = os.environ.get("BPFLAB_IN_VM") == "1"

# A fixed CI profile (the same examples every run), a longer opt-in one:
#   HYPOTHESIS_PROFILE=long nox -s kernel
# and a shorter one for VMs, where under emulation every example costs
# 10-20x: fewer random examples, every aimed edge still hit
# (tests/test_xdp_dnat_checksums.py keeps at least 10 per edge).
settings.register_profile("ci", max_examples=300, derandomize=True, deadline=None, print_blob=True)
settings.register_profile("long", max_examples=20000, deadline=None, print_blob=True)
settings.register_profile("vm", max_examples=100, derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("vm" if IN_VM else "ci"))


def pytest_collection_modifyitems(config, items):
    """In a VM, unless -m chose: only the `kernel` tests (they load programs,
    build namespaces, attach). The others (lint, layout, the checksum
    oracle, builds with clang: 13 of 27 minutes of a 5.10 VM) give the same
    result on every kernel, and so do the `harness` tests (argument parsing,
    CLI plumbing, child sessions, signals: a third of a VM's time, each a
    Python start-up of seconds under emulation): the host runs those."""
    if not IN_VM or config.getoption("markexpr"):
        return
    kept = [item for item in items if item.get_closest_marker("kernel") and not item.get_closest_marker("harness")]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
