"""The fork server (bpflab.host.forkserver) runs a command line as `python`
itself would: the same output, exit status, argv, environment, working
directory and signals, compared with a cold `python` doing the same."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from bpflab.host.forkserver import ForkRefused, ForkServer
from bpflab.host.paths import REPO_ROOT
from bpflab.host.waits import read_line
from bpflab.loaders.registry import PROGRAMS

ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture(scope="module")
def server():
    fs = ForkServer(["bpflab.loaders.registry", "bpflab.loaders.cli"], ENV, cwd=str(REPO_ROOT),
                    volatile=("PYTEST_CURRENT_TEST", "ASKED"))
    yield fs
    fs.close()


def forked(server, argv, *, env=None, cwd=REPO_ROOT, timeout=20, **kwargs):
    proc = server.start(argv, env=env or ENV, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        **kwargs)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def cold(argv, *, env=None, cwd=REPO_ROOT):
    r = subprocess.run([sys.executable, *argv], env=env or ENV, cwd=cwd, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def script(tmp_path, body: str) -> str:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_every_loader_says_the_same_forked_and_cold(server, name):
    for args in (["--help"], ["nosuch0", "--netns", "bpflab-nowhere"], ["eth0", "--frobnicate"]):
        argv = ["-m", f"bpflab.loaders.{name}", *args]
        assert forked(server, argv) == cold(argv), args


def test_argv_environment_directory_and_stdin_are_the_ones_asked_for(server, tmp_path):
    path = script(tmp_path, """
        import os, sys
        print(sys.argv[1:], os.getcwd(), os.environ.get("ASKED"), repr(sys.stdin.read()), __name__)
        print(sys.path[0] == os.path.dirname(os.path.abspath(sys.argv[0])))
        """)
    env = {**ENV, "ASKED": "yes"}  # a volatile variable: it may differ from the server's
    assert forked(server, [path, "a", "b c"], env=env, cwd=tmp_path) == cold([path, "a", "b c"], env=env, cwd=tmp_path)
    assert forked(server, [path], env=env, cwd=tmp_path)[1].startswith(f"[] {tmp_path} yes '' __main__\nTrue")


@pytest.mark.parametrize("ending, status", [("sys.exit(3)", 3), ("sys.exit('bye')", 1), ("raise ValueError('boom')", 1),
                                            ("os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)", -15),
                                            ("raise KeyboardInterrupt", -2), ("pass", 0)])
def test_exit_statuses_are_pythons(server, tmp_path, ending, status):
    path = script(tmp_path, f"import os, signal, sys, time\nprint('out')\nsys.stderr.write('err\\n')\n{ending}\n")
    got = forked(server, [path])
    assert got[0] == status
    assert got == cold([path])


def test_unbuffered_output_arrives_before_the_end(server, tmp_path):
    path = script(tmp_path, "import time\nprint('first', flush=False)\ntime.sleep(30)\n")
    proc = server.start([path], env=ENV, cwd=str(REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, unbuffered=True)
    assert read_line(proc.stdout, timeout=10, what="the unbuffered line") == "first\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == -signal.SIGINT  # Ctrl-C: KeyboardInterrupt, as in Python
    proc.communicate(timeout=5)


def test_a_changed_environment_is_refused(server):
    with pytest.raises(ForkRefused, match="environment"):
        server.start(["-c", "pass"], env={**ENV, "BPFLAB_BUILD_DIR": "/elsewhere"}, cwd=str(REPO_ROOT))


def test_children_die_with_the_server(tmp_path):
    fs = ForkServer([], ENV, cwd=str(REPO_ROOT))
    proc = fs.start([script(tmp_path, "import time\nprint('up', flush=True)\ntime.sleep(60)\n")], env=ENV,
                    cwd=str(REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert read_line(proc.stdout, timeout=10, what="the child's line") == "up\n"
    pid = proc.pid
    fs.proc.kill()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    stat = f"/proc/{pid}/stat"
    assert not os.path.exists(stat) or open(stat).read().split(") ")[1][0] in "ZX", "the child outlived its server"
    fs.close()


def test_a_preload_that_starts_a_thread_is_refused(tmp_path):
    (tmp_path / "threaded.py").write_text("import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n")
    with pytest.raises(ForkRefused, match="did not start"):
        ForkServer(["threaded"], {**ENV, "PYTHONPATH": f"{REPO_ROOT}:{tmp_path}"}, cwd=str(REPO_ROOT), timeout=20)


def test_python_dash_c_is_pythons(server):
    code = "import sys; print(sys.argv, __name__, repr(sys.path[0])); raise SystemExit(4)"
    assert forked(server, ["-c", code, "x", "y"]) == cold(["-c", code, "x", "y"])
    assert forked(server, ["-u", "-c", code])[:2] == (4, "['-c'] __main__ ''\n")


def test_other_python_options_are_refused(server):
    with pytest.raises(ForkRefused, match="-B"):
        server.start(["-B", "-c", "pass"], env=ENV, cwd=str(REPO_ROOT))


def test_a_command_line_holds_no_descriptor_of_the_servers(server, tmp_path):
    # A long-running sibling keeps its reply socket open in the server while
    # this one is forked: none of it may leak into this one.
    sibling = server.start([script(tmp_path, "import time\ntime.sleep(30)\n")], env=ENV, cwd=str(REPO_ROOT))
    try:
        code = "import os; print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))"
        assert forked(server, ["-c", code]) == cold(["-c", code])  # the standard streams and listdir's own
    finally:
        sibling.kill()
        sibling.wait(timeout=10)


def test_the_suites_loader_command_lines_are_forked(monkeypatch):
    from bpflab.host.forkserver import COLD_ENV, ForkedProcess
    from tests.clitools import python

    monkeypatch.delenv(COLD_ENV, raising=False)  # unless asked to start them cold

    proc = python(["-m", "bpflab.loaders.hello", "--help"])
    out, _ = proc.communicate(timeout=30)
    assert isinstance(proc, ForkedProcess), "started cold: the suite pays a Python start-up per command line"
    assert proc.returncode == 0 and out.startswith("usage: python -m bpflab.loaders.hello")
