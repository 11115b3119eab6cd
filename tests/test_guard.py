"""The session guard is opt-in (bpflab.lab.pytest_guard): a project that
asks for it gets each kind of leftover caught, each in a session of its own
(a namespace, a pin directory, a process, a change to the namespace the
session started in); a project that does not, with bpflab and
pytest-timeout installed, gets no marker, no sweep, no leak check and no
autouse fixture from bpflab. The sessions are real pytest runs with every
installed plugin autoloaded, forked from a warm process."""
import os
import subprocess
from pathlib import Path

import pytest

from bpflab.host import leftovers, netns
from bpflab.host.forkserver import ForkServer
from bpflab.host.instances import PIN_ROOT
from bpflab.host.paths import REPO_ROOT
from bpflab.host.processes import stop
from bpflab.host.waits import scaled_timeout
from bpflab.lab.pytest_guard import SCENARIO_ENV

pytestmark = pytest.mark.kernel
GUARD = "bpflab.lab.pytest_guard"
ENV = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"} | {
    "PYTHONPATH": str(REPO_ROOT), SCENARIO_ENV: "1"}


@pytest.fixture(scope="module")
def sessions():
    server = ForkServer(["pytest", "bpflab.lab.pytest_plugin", GUARD, "pytest_timeout", "xdist.plugin",
                         "hypothesis.extra.pytestplugin", "_pytest.timing", "bpflab.host.netns"], ENV,
                        cwd=str(REPO_ROOT), volatile=("PYTEST_CURRENT_TEST",))
    yield server
    server.close()


def session(server, tmp_path: Path, test: str, *args: str, netns: str | None = None) -> subprocess.CompletedProcess:
    """A pytest session over one test file in a project of its own (tmp_path,
    no conftest): its output and exit status."""
    (tmp_path / "test_scenario.py").write_text(test)
    # (the warm process imported the plugins before pytest could mark them for assertion rewriting: it would warn)
    proc = server.start(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                         f"--rootdir={tmp_path}", *args,
                         str(tmp_path / "test_scenario.py")], env=ENV, cwd=str(tmp_path), netns=netns,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=scaled_timeout(60))
    finally:
        stop(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


LEAKS = {
    "namespace": ("from bpflab.host import netns, owners\n"
                  "def test_leaks():\n    netns.create(owners.current().new_prefix() + '-forgotten')\n",
                  "namespace /run/netns/bpflab-{pid}-1-forgotten (owner {pid})"),
    "pin directory": ("from bpflab.host import owners\nfrom bpflab.host.paths import BPFFS\n"
                      "def test_leaks():\n    (BPFFS / owners.current().new_prefix()).mkdir()\n",
                      "pin directory /sys/fs/bpf/bpflab-{pid}-1 (owner {pid})"),
    "process": ("import os, subprocess\n"
                "def test_leaks():\n    subprocess.Popen(['sleep', '600'], env={**os.environ, 'BPFLAB_OWNER': "
                "str(os.getpid())}, start_new_session=True)\n",
                "process "),
}


@pytest.mark.parametrize("kind", LEAKS)
def test_the_guard_catches_what_a_session_leaves(sessions, tmp_path, kind):
    test, line = LEAKS[kind]
    result = session(sessions, tmp_path, test, "-p", GUARD)
    assert result.returncode == 1, result.stdout
    guard = result.stdout.split("bpflab leak guard: the suite left the host changed:\n", 1)[1].splitlines()
    pid = int(guard[0].rsplit("(owner ", 1)[1].rstrip(")"))
    assert guard[0].strip().startswith(line.format(pid=pid)), result.stdout
    assert [left for left in leftovers.find() if left.owner == pid and left.kind != "owner lock"] == []  # removed


def test_the_guard_catches_a_change_to_the_namespace_it_started_in(sessions, tmp_path, lab_factory):
    """The child session runs in a namespace of this test's lab, so the
    namespace it changes is this test's, not the host's."""
    lab = lab_factory("pair")
    test = ("import subprocess\ndef test_changes_it():\n"
            "    subprocess.run(['ip', 'address', 'add', '192.0.2.77/32', 'dev', 'lo'], check=True)\n")
    result = session(sessions, tmp_path, test, "-p", GUARD, netns=lab.netns("left"))
    assert result.returncode == 1, result.stdout
    assert "bpflab leak guard: the suite left the host changed:\n  root namespace addresses: removed [], added " \
           "[(1, '192.0.2.77', 32)]" in result.stdout


@pytest.fixture
def dead_instance():
    """What a full sweep would remove (and a lab build running beside this
    test never does): a loader instance whose loader died."""
    path = PIN_ROOT / f"guardtest@bpflab-gone@eth{os.getpid()}"
    path.mkdir(parents=True)
    yield path
    if path.exists():
        path.rmdir()


def test_a_project_that_does_not_ask_gets_nothing(sessions, tmp_path, dead_instance):
    test = ("import os\nfrom bpflab.host import netns, owners\n"
            "def test_unrelated(request):\n"
            "    assert request.node.get_closest_marker('timeout') is None\n"
            "    assert not [f for f in request.fixturenames if 'bpflab' in f or f.startswith('_stop')]\n"
            "    netns.create(owners.current().new_prefix() + '-its-own-business')\n")
    result = session(sessions, tmp_path, test)  # pytest-timeout is installed: autoloaded
    assert result.returncode == 0, result.stdout
    assert "leak guard" not in result.stdout and "swept" not in result.stdout
    assert dead_instance.exists()  # no sweep at the start
    left = [x for x in leftovers.find() if x.kind == "namespace" and x.where.endswith("-its-own-business")]
    assert len(left) == 1  # no leak check at the end: the session's namespace is its business
    netns.remove(Path(left[0].where).name)
