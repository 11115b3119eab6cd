"""pytest fixtures for tests that stand on the lab; nothing here acts on a
test that does not ask for it (installing bpflab changes no other test
session: a project opts in to the session-wide guard, bpflab.lab.pytest_guard).

- `lab_factory(name_or_topology)` builds a fresh topology for this test;
  `pair_lab` and `dnat_lab` are the two standard ones.
- `attach(LoaderClass, *args, **kwargs)` opens any loader and closes it at
  teardown, before the lab goes.
- `assert_frame_arrives(...)` sends a frame and asserts the frame that
  arrives elsewhere has the given field values.
- The markers `kernel` (needs root and BPF: missing privileges fail the
  test) and `since_kernel(...)` (skipped, saying why, on older kernels only).

When a test that used a lab fails, the frames its labs injected and
captured are written as pcaps into the test's tmp_path and the paths are
printed.

The checksum rule, for tests that built labs: a test fails if any frame its
labs captured has a bad checksum (lab.checksums judges it) or any node's
kernel counted a checksum error, unless it says
`@pytest.mark.expect_bad_checksums("why")`; and if a captured frame holds
something that cannot be judged (a first fragment, an unknown protocol),
unless it says `@pytest.mark.expect_unchecked("why")`.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import pytest

from bpflab.host import kernel, processes
from bpflab.host.waits import scaled_timeout
from bpflab.lab.topology import TOPOLOGIES, Topology

if TYPE_CHECKING:
    from bpflab.lab import builder

LABS = pytest.StashKey[list]()      # item.stash: the labs a test built (the checksum rule reads them)
REPORTS = pytest.StashKey[dict]()   # item.stash: its reports by phase (pcaps of a failing test's labs)


def pytest_configure(config):
    for marker in (
        "kernel: needs root and BPF (loads programs, builds namespaces); missing privileges or BTF fail the "
        "test, never skip it",
        "since_kernel(version, feature) or since_kernel(name): needs a kernel feature that appeared in that "
        "version (name: one of bpflab.host.kernel.FEATURES): skipped, with the reason, only on older kernels",
        "expect_bad_checksums(reason): the test's labs may see bad checksums (the checksum rule is off)",
        "expect_unchecked(reason): the test's labs may capture frames whose checksums cannot be judged (first "
        "fragments, protocols without a checksum judged here); bad ones still fail it",
    ):
        config.addinivalue_line("markers", marker)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    # Reached only when the test body passed: then its labs must have seen
    # no bad checksum, unless the test expects them.
    labs = item.stash.get(LABS, [])
    if labs and not item.get_closest_marker("expect_bad_checksums"):
        unchecked = not item.get_closest_marker("expect_unchecked")
        problems = [p for lab in labs for p in lab.checksum_problems(unchecked=unchecked)]
        if problems:
            raise AssertionError("bpflab checksum rule: the test's labs saw bad checksums, or frames it could not "
                                 "judge (mark the test @pytest.mark.expect_bad_checksums(reason) or "
                                 "@pytest.mark.expect_unchecked(reason) if it means to):\n  " + "\n  ".join(problems))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if "lab_factory" in getattr(item, "fixturenames", ()):  # only tests with labs write pcaps when they fail
        item.stash.setdefault(REPORTS, {})[rep.when] = rep
    return rep


def skip_below(version: str, feature: str) -> None:
    """Skip the test, saying why, only where the kernel is older than the
    feature; on a kernel that should have it, a missing feature fails the
    test (cilium/ebpf's rule)."""
    if kernel.version() < tuple(int(x) for x in version.split(".")):
        pytest.skip(f"needs {feature}, which kernels before {version} lack (this is {os.uname().release})")


def skip_without(feature: str) -> None:
    """skip_below for a feature bpflab.host.kernel.FEATURES names: for
    fixtures that need it, so every test using them says so."""
    skip_below(*kernel.FEATURES[feature])


def pytest_runtest_setup(item):
    since = item.get_closest_marker("since_kernel")
    if since:
        # since_kernel("6.6", "tcx links"), or since_kernel("tcx") for a known feature
        skip_below(*(since.args if len(since.args) == 2 else kernel.FEATURES[since.args[0]]))
    if item.get_closest_marker("kernel"):
        problems = kernel.problems()
        if problems:
            # An error, never a skip: a suite that cannot test the kernel must say so.
            pytest.fail(f"{'; '.join(problems)} (README: the test command)", pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    # An interrupted session (Ctrl-C, -x) may skip fixture finalizers: what
    # bpflab started and built in this process goes now (nothing, if bpflab
    # was not used).
    processes.stop_spawned()
    # The builder (pyroute2 and all) is imported only by a test that builds
    # a lab: a session that never did loads none of it, and has none to end.
    built = sys.modules.get("bpflab.lab.builder")
    if built is not None:
        built.teardown_all()


def _failed(request) -> bool:
    reports = request.node.stash.get(REPORTS, {})
    return any(reports[w].failed for w in ("setup", "call") if w in reports)


def _factory(made: list, node, checked: bool):
    def make(topology: str | Topology = "pair") -> builder.Lab:
        from bpflab.lab import builder

        topo = TOPOLOGIES[topology]() if isinstance(topology, str) else topology
        lab = builder.build(topo)
        made.append(lab)
        if checked:  # the checksum rule (pytest_runtest_call) looks here
            node.stash.setdefault(LABS, []).append(lab)
        return lab

    return make


@pytest.fixture
def lab_factory(request, tmp_path):
    """Build topologies for this test; all are torn down after it."""
    made: list[builder.Lab] = []
    yield _factory(made, request.node, checked=True)
    if _failed(request):
        for lab in made:
            for path in lab.log.write_pcaps(tmp_path):
                print(f"\nlab frames of {lab.prefix}: {path}")
    for lab in reversed(made):
        lab.teardown()


@pytest.fixture(scope="module")
def module_lab_factory(request):
    """lab_factory for labs that every test of a module shares (test-run
    runners that only need the lab's routing tables, say)."""
    made: list[builder.Lab] = []
    yield _factory(made, request.node, checked=False)
    for lab in reversed(made):
        lab.teardown()


@pytest.fixture
def pair_lab(lab_factory):
    return lab_factory("pair")


@pytest.fixture
def dnat_lab(lab_factory):
    return lab_factory("dnat")


@pytest.fixture
def attach():
    """attach(Loader, *args, **kwargs) -> the opened loader, closed at teardown."""
    opened = []

    def open_(loader, *args, **kwargs):
        thing = loader(*args, **kwargs)
        opened.append(thing)
        return thing

    yield open_
    for thing in reversed(opened):
        thing.close()


@pytest.fixture
def assert_frame_arrives():
    """assert_frame_arrives(lab, frame, src=(node, ifname), dst=(node, ifname),
    match=predicate, expect={"IP.dst": "10.244.1.5", ...}) -> the arrived packet."""

    def check(lab, frame, *, src, dst, match=None, expect=None, timeout=2.0):
        with lab.capture(*dst, match) as cap:
            lab.send(*src, frame)
            got = cap.wait(1, scaled_timeout(timeout))
        assert got, f"no matching frame arrived at {dst[0]}/{dst[1]} within {scaled_timeout(timeout)}s"
        pkt = got[0]
        for path, want in (expect or {}).items():
            layer, field = path.split(".")
            actual = getattr(pkt[layer], field)
            assert actual == want, f"{path}: expected {want!r}, got {actual!r}\n{pkt.show(dump=True)}"
        return pkt

    return check
