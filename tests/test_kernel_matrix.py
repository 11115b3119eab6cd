"""The kernel matrix's plumbing that can be checked without booting a VM
(the matrix itself runs in CI: scripts/test.sh)."""

import json
import shlex
import time
from pathlib import Path

import pytest

from bpflab.host.waits import scaled_timeout
from bpflab.kernels.fetch import Archive, KernelNotFound, parse_depends, pick_package
from bpflab.kernels.results import KernelResult, counts_from_junit
from tests.clitools import run_pytest
from tests.kernelfakes import fake_vng

OFFERED = ["5.10", "6.1", "6.12", "6.16", "6.17", "6.18", "6.19", "7.0", "7.1", "7.2", "7.3"]


def test_kernel_versions_expand_and_bad_ones_are_named():
    from bpflab.kernels.cli import KernelsError, versions

    assert versions([], OFFERED) == ["6.1"]
    assert versions(["6.1,6.12", "5.10", "6.1"], OFFERED) == ["6.1", "6.12", "5.10"]
    assert versions(["lts"], OFFERED) == ["5.10", "6.1", "6.12"]
    assert versions(["all"], OFFERED) == OFFERED
    assert versions(["matrix"], OFFERED) == ["5.10", "6.1", "6.12", "host", "7.2", "newest"]
    assert versions(["host", "newest"], None) == ["host", "newest"]  # the archive not needed
    for bad, message in (("9.9.9", "not a kernel line"), ("6.99", "Debian's archive has no 6.99 kernel"),
                         ("latest", "nor one of matrix, lts, all, newest, host")):
        with pytest.raises(KernelsError, match=message):
            versions([bad], OFFERED)


@pytest.mark.parametrize("argv,message", [
    (["--kernel", "6.1", "--"], "nothing after --: say the command to run on each kernel"),
    (["--kernel", "host", "pytest"], "'pytest': put the command after --"),
    (["--kernel", "nope"], "--kernel nope: not a kernel line"),
    (["-j", "0", "--kernel", "host"], "-j 0: a number of VMs at once"),
    (["--out", "/proc/version/results"], "argument --out: cannot write into /proc/version/results: /proc/version is "
                                         "not a directory"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    from bpflab.tool.cli import main

    try:
        code = main(["kernels", *argv])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bpflab kernels: error: ") and message in err, err


def test_a_machine_that_cannot_boot_kernels_says_why(monkeypatch):
    from bpflab.kernels import cli

    monkeypatch.setattr(cli.shutil, "which", lambda *a, **k: None)
    assert cli.machine_problems(vms=True) == ["virtme-ng is missing: pip install virtme-ng (and Debian's "
                                              "qemu-system-x86, busybox-static, udev, kmod)"]
    assert cli.machine_problems(vms=False) == []  # --kernel host needs no VM
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    assert cli.machine_problems(vms=False)[0].startswith("needs root")


def test_in_a_vm_this_suite_runs_only_the_kernel_tests(monkeypatch):
    """The repository's own policy (conftest.py), keyed on what `bpflab
    kernels` sets in every guest."""
    import conftest

    class Item:
        def __init__(self, *marks):
            self.marks = marks

        def get_closest_marker(self, name):
            return name if name in self.marks else None

    class Config:
        def __init__(self, markexpr):
            self.deselected = []
            self.hook = type("Hook", (), {"pytest_deselected": lambda _, items: self.deselected.extend(items)})()
            self.markexpr = markexpr

        def getoption(self, name):
            return self.markexpr

    loads, pure, harness = Item("kernel"), Item(), Item("kernel", "harness")
    for in_vm, markexpr, kept in ((True, "", [loads]), (True, "verifier", [loads, pure, harness]),
                                  (False, "", [loads, pure, harness])):
        monkeypatch.setattr(conftest, "IN_VM", in_vm)
        items, config = [loads, pure, harness], Config(markexpr)
        conftest.pytest_collection_modifyitems(config, items)
        assert items == kept and len(config.deselected) == 3 - len(kept)


def run_of(tmp_path, *pytest_args, project=None):
    from bpflab.host.paths import REPO_ROOT
    from bpflab.kernels.matrix import Run

    return Run(project=project or REPO_ROOT, command=["pytest", *pytest_args], out=tmp_path / "out")


# From Debian's archive (bullseye to experimental, 2026-11-27): kernels of a
# line, other flavours, a release candidate's unversioned name, split packages.
ARCHIVE = ["linux-image-5.10.0-45-amd64", "linux-image-5.10.0-46-amd64", "linux-image-5.10.0-46-rt-amd64",
           "linux-image-6.1.0-0.deb11.52-amd64", "linux-image-6.1.0-56-amd64", "linux-image-6.1.0-56-cloud-amd64",
           "linux-image-6.1.0-57-amd64-unsigned", "linux-image-6.12.118+deb13-amd64", "linux-image-6.12.9-amd64",
           "linux-image-7.2.13+deb14-amd64", "linux-image-7.3-amd64", "linux-image-7.3.4+deb13-amd64",
           "linux-image-amd64"]


def test_the_newest_plain_image_of_a_line_is_chosen():
    assert pick_package("5.10", ARCHIVE) == "linux-image-5.10.0-46-amd64"
    assert pick_package("6.1", ARCHIVE) == "linux-image-6.1.0-56-amd64"
    assert pick_package("6.12", ARCHIVE) == "linux-image-6.12.118+deb13-amd64"
    assert pick_package("newest", ARCHIVE) == "linux-image-7.3.4+deb13-amd64"
    with pytest.raises(KernelNotFound, match=r"no linux-image package for kernel 6.2 .*has: 5.10, 6.1, 6.12, 7.2, 7.3"):
        pick_package("6.2", ARCHIVE)


def test_a_split_kernel_brings_its_binary_and_modules():
    show = ("Package: linux-image-7.3.4+deb13-amd64\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2) | "
            "linux-initramfs-tool, linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 "
            "(= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)\n")
    assert parse_depends(show) == ["linux-binary-7.3.4+deb13-amd64", "linux-modules-7.3.4+deb13-amd64"]
    assert parse_depends("Package: linux-image-5.10.0-46-amd64\nDepends: kmod, linux-base (>= 4.3~)\n") == []


def test_the_private_apt_configuration_touches_nothing_of_the_machines(tmp_path):
    archive = Archive(tmp_path)
    options = " ".join(archive.options())
    assert f"Dir::Etc::SourceList={tmp_path}/sources.list" in options
    assert "Dir::Etc::SourceParts=/dev/null" in options
    assert f"Dir::State::Lists={tmp_path}/lists" in options and f"Dir::Cache={tmp_path}/cache" in options
    suites = [line.split()[3] for line in archive.sources_text().splitlines()]
    assert {"bullseye", "bookworm", "bookworm-backports", "trixie", "trixie-backports", "sid",
            "experimental"} <= set(suites)


def test_results_are_read_from_junit(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">'
        '<testcase classname="tests.test_a" name="test_ok" time="0.1"/>'
        '<testcase classname="tests.test_a" name="test_old" time="0"><skipped type="pytest.skip" '
        'message="tests/test_a.py:9: needs tcx links, which kernels before 6.6 lack">x</skipped></testcase>'
        '<testcase classname="tests.test_b" name="test_bad" time="0.2"><failure message="assert 1 == 2">'
        'x</failure></testcase><testcase classname="tests.test_b" name="test_err" time="0"><error message="e"/>'
        '</testcase></testsuite></testsuites>')
    counts = counts_from_junit(junit, suite_name="kernel-5.10.0-46-amd64")
    assert counts == {"passed": 1, "failed": 1, "errors": 1, "skipped": 1,
                      "skipped_reasons": {"needs tcx links, which kernels before 6.6 lack": 1},
                      "failures": ["tests.test_b::test_bad", "tests.test_b::test_err"]}
    assert 'name="kernel-5.10.0-46-amd64"' in junit.read_text()
    line = KernelResult(version="5.10", release="5.10.0-46-amd64", status="fail", exit=1, seconds=312.4,
                        junit=str(junit), **counts).line()
    assert line.split() == ["5.10", "5.10.0-46-amd64", "FAIL", "1", "passed,", "1", "skipped,", "1", "failed,", "1",
                            "errors", "(312", "s)"]


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
    assert scaled_timeout(3) == 30
    monkeypatch.delenv("BPFLAB_TIME_SCALE")
    assert scaled_timeout(3) == 3
    for bad in ("fast", "0.5"):
        monkeypatch.setenv("BPFLAB_TIME_SCALE", bad)
        with pytest.raises(ValueError, match="BPFLAB_TIME_SCALE must be"):
            scaled_timeout(3)



def test_a_hanging_test_fails_after_the_scaled_timeout(tmp_path):
    (tmp_path / "test_hang.py").write_text(
        "import time, pytest\n"
        "@pytest.mark.timeout(0.5)\n"
        "def test_hangs(): time.sleep(1000)\n")
    result = run_pytest("-q", str(tmp_path), f"--rootdir={tmp_path}",
                        env={"BPFLAB_TIME_SCALE": "2"})
    assert "1 failed" in result.stdout
    assert "Timeout (>1.0s) from pytest-timeout" in result.stdout


@pytest.mark.parametrize("how", ["option", "ini", "environment"])
def test_the_sessions_own_timeout_is_scaled_too(tmp_path, how):
    """A timeout set for the session the way pytest-timeout reads it (its
    option, the ini, PYTEST_TIMEOUT) is the base the guard scales, not its
    own default: a VM's run can be given a shorter one."""
    (tmp_path / "test_hang.py").write_text("import time\ndef test_hangs(): time.sleep(1000)\n")
    args = {"option": ["--timeout", "0.5"], "ini": ["-o", "timeout=0.5"], "environment": []}[how]
    env = {"BPFLAB_TIME_SCALE": "2", **({"PYTEST_TIMEOUT": "0.5"} if how == "environment" else {})}
    result = run_pytest("-q", str(tmp_path), f"--rootdir={tmp_path}", *args, env=env)
    assert "1 failed" in result.stdout
    assert "Timeout (>1.0s) from pytest-timeout" in result.stdout


def test_the_host_line_writes_junit_and_the_json_like_a_vm(tmp_path, capsys):
    """--kernel host runs the command here, and its results take the same
    way as a VM's: a JUnit file named for the kernel, a line in results.json."""
    import json
    import os

    from bpflab.kernels import matrix

    status = matrix.main(["host"], run_of(tmp_path, "-q", "-p", "no:xdist", "tests/test_registry.py"), jobs=1)
    assert status == 0
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    (line,) = report["kernels"]
    assert (line["version"], line["release"], line["status"], line["exit"]) == ("host", os.uname().release, "pass", 0)
    assert (line["passed"], line["failed"], line["skipped"]) == (2, 0, 0)
    junit = (tmp_path / "out" / "junit-host.xml").read_text()
    assert f'name="kernel-{os.uname().release}"' in junit
    assert "host " in capsys.readouterr().out.split("kernels (")[1]


def test_kernels_of_earlier_runs_stay_in_the_json_until_run_again(tmp_path):
    import json

    from bpflab.kernels import matrix

    earlier = {"date": "2026-11-26T10:00:00+00:00", "kernels": [
        {"version": "5.10", "release": "5.10.0-46-amd64", "status": "pass", "passed": 236},
        {"version": "host", "release": "old", "status": "fail", "passed": 1}]}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text(json.dumps(earlier))
    assert matrix.main(["host"], run_of(tmp_path, "-q", "-p", "no:xdist", "tests/test_registry.py"), jobs=1) == 0
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(k["version"], k["passed"], k["date"]) for k in report["kernels"]] == [
        ("5.10", 236, "2026-11-26T10:00:00+00:00"), ("host", 2, report["date"])]


def test_any_command_is_judged_by_its_exit_status(tmp_path):
    from bpflab.kernels import matrix

    run = matrix.Run(project=tmp_path, command=["sh", "-c", "echo hello; exit 3"], out=tmp_path / "out")
    assert matrix.main(["host"], run, jobs=1) == 1
    (line,) = json.loads((tmp_path / "out" / "results.json").read_text())["kernels"]
    assert (line["status"], line["exit"], line["junit"]) == ("fail", 3, None)


def test_the_guests_get_the_project_compiled(tmp_path):
    """Guests do not write bytecode: the host compiles the project's modules
    and pytest's rewritten test modules first, and a process that does not
    write bytecode reads them (no compiling in every process of the VM)."""
    import os
    import subprocess
    import sys

    from bpflab.kernels import matrix

    (tmp_path / "bpflab").mkdir()
    (tmp_path / "bpflab" / "thing.py").write_text("VALUE = 42\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_thing.py").write_text("def test_thing():\n    assert 1 + 1 == 2\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    assert matrix.compile_for_guests(run_of(tmp_path, project=tmp_path)) == []
    tag = sys.implementation.cache_tag
    assert (tmp_path / "bpflab" / "__pycache__" / f"thing.{tag}.pyc").exists()
    assert [p.name for p in (tmp_path / "tests" / "__pycache__").iterdir() if "pytest" in p.name] != []
    # A guest-like process (no bytecode writing) finds the rewritten module cached.
    result = subprocess.run([sys.executable, "-B", "-m", "pytest", "-p", "no:cacheprovider",
                             "-q", "--debug=/dev/stdout", "tests/test_thing.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=scaled_timeout(60),
                            env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "found cached rewritten pyc" in result.stdout


def test_a_guest_does_not_import_test_files_in_which_nothing_is_selected(tmp_path):
    """The host's collection with the guest's arguments names the files
    without a selected test; the guest ignores those, and only those."""
    from bpflab.kernels import matrix

    (tmp_path / "tests").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    kernel_test = "import pytest\n\n@pytest.mark.kernel\ndef test_{}():\n    pass\n"
    (tmp_path / "tests" / "test_loads.py").write_text(kernel_test.format("loads") + "\ndef test_pure():\n    pass\n")
    (tmp_path / "tests" / "test_attaches.py").write_text(kernel_test.format("attaches"))
    (tmp_path / "tests" / "test_pure.py").write_text("def test_sum():\n    assert 1 + 1 == 2\n")
    (tmp_path / "tests" / "test_cli.py").write_text(
        "import pytest\n\n@pytest.mark.kernel\n@pytest.mark.harness\ndef test_cli():\n    pass\n")
    kernel_only = ("-m", "kernel and not harness")

    def ignored(*args):
        return matrix.compile_for_guests(run_of(tmp_path, *args, project=tmp_path))

    assert ignored(*kernel_only, "-n", "2") == ["--ignore=tests/test_cli.py", "--ignore=tests/test_pure.py"]
    assert ignored(*kernel_only, "-k", "loads") == \
        ["--ignore=tests/test_attaches.py", "--ignore=tests/test_cli.py", "--ignore=tests/test_pure.py"]
    assert ignored(*kernel_only, "tests/test_pure.py", "tests/test_loads.py") == ["--ignore=tests/test_pure.py"]
    assert ignored("-m", "not kernel") == ["--ignore=tests/test_attaches.py", "--ignore=tests/test_cli.py"]
    # A file the host cannot import: nothing is ignored, the guest says what is wrong.
    (tmp_path / "tests" / "test_broken.py").write_text("import no_such_module\n")
    assert ignored(*kernel_only) == []


JUNIT_ONE_PASS = (b'<?xml version="1.0"?><testsuites><testsuite name="kernel-6.12.1" tests="1" failures="0" '
                  b'errors="0" skipped="0"><testcase classname="t" name="test_a" time="1"/></testsuite></testsuites>')
NO_GUEST = "exited (status 1) before the guest ran anything, the kernel silent"
MID_RUN = "exited (status 0) while the suite ran, the kernel silent"
PANIC = "Kernel panic - not syncing: Fatal exception in interrupt"
CONSOLE = "(console: {console})"


@pytest.mark.parametrize("outcomes, status, note", [
    # The first boot exits before the guest ran anything: booted again, and said so.
    ([(1, "", None, None, ""), (0, "6.12.1", 0, JUNIT_ONE_PASS, "")], "pass", f"boot 1: {NO_GUEST}"),
    # Twice: an error that says what happened.
    ([(1, "", None, None, ""), (1, "", None, None, "")], "error", f"boot 1: {NO_GUEST}; the VM {NO_GUEST} {CONSOLE}"),
    # The VM goes away in the middle of the suite, the kernel silent: the
    # emulator's; booted again.
    ([(0, "6.12.1", None, None, ""), (0, "6.12.1", 0, JUNIT_ONE_PASS, "")], "pass", f"boot 1: {MID_RUN}"),
    # The kernel said it was in trouble: the kernel's, not booted again.
    ([(0, "6.12.1", None, None, PANIC), (0, "6.12.1", 0, JUNIT_ONE_PASS, "")], "error",
     f"the kernel said: {PANIC} {CONSOLE}"),
    # A guest that ran and failed is not booted again.
    ([(0, "6.12.1", 1, None, ""), (0, "6.12.1", 0, JUNIT_ONE_PASS, "")], "fail",
     "pytest ran (exit 1) but wrote no JUnit result"),
])
def test_a_vm_that_exits_silently_is_booted_once_more(tmp_path, monkeypatch, outcomes, status, note):
    from bpflab.kernels import matrix

    boots = iter([matrix.Boot(vm_status=v, release=r, status=s, junit_xml=j, trouble=t) for v, r, s, j, t in outcomes])
    monkeypatch.setattr(matrix, "fetch", lambda version, archive: Path("/boot/vmlinuz-6.12.1"))
    monkeypatch.setattr(matrix, "boot_and_run", lambda *args: next(boots))
    result = matrix.run_on("6.12", run_of(tmp_path, "-q"))
    assert (result.status, result.note) == (status, note.format(console=tmp_path / "out" / "console-6.12.log"))
    assert result.passed == (1 if status == "pass" else 0)  # from the JUnit file of the boot that ran


def test_the_guests_console_is_kept_and_only_trouble_shown(tmp_path, monkeypatch, capsys):
    """What vng prints: the kernel's console (kept in the log, shown only
    where the kernel is in trouble), the guest's output (shown), the markers
    (read, not shown)."""
    import base64

    from bpflab.kernels import matrix

    junit = base64.b64encode(JUNIT_ONE_PASS).decode()
    output = ["[    0.000000] Linux version 6.12.1", "Probing EDD (edd=off to disable)... ok",
              "bpflab-uname=6.12.1", "........ [100%]", "[   12.345678] veth0: entered promiscuous mode",
              f"[   13.000001] {PANIC}", "1 passed in 1.00s", "bpflab-exit=0", f"bpflab-junit={junit}",
              "[   14.500000] reboot: Power down"]
    fake_vng(tmp_path, monkeypatch, output, then="exit 3\n")
    console = tmp_path / "console.log"
    boot = matrix.boot_and_run("6.12", Path("/boot/vmlinuz"), "unused", console)
    assert (boot.vm_status, boot.release, boot.status, boot.junit_xml) == (3, "6.12.1", 0, JUNIT_ONE_PASS)
    assert boot.trouble == PANIC
    shown = capsys.readouterr().out.splitlines()
    assert shown == ["[kernel 6.12] ........ [100%]",
                     f"[kernel 6.12] [   13.000001] {PANIC}", "[kernel 6.12] 1 passed in 1.00s"]
    kept = console.read_text().splitlines()
    assert kept[0].startswith("=== ") and kept[0].endswith(" booting /boot/vmlinuz")
    assert kept[1:4] == output[:3] and kept[-1] == output[-1] and len(kept) == len(output) + 1


LOCKUP = "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [python:237]"


def test_a_kernel_that_keeps_reporting_itself_stuck_is_stopped(tmp_path, monkeypatch, capsys):
    """5.10's VM on 2026-11-28: both vCPUs in bpf_dispatcher_xdp_func,
    a soft lockup reported every 28 s and nothing else. The VM (here a shell
    that would sleep for ten minutes after its last line) is stopped once the
    reports span STUCK_FOR_S of the guest's clock, qemu's stand-in with it."""
    from bpflab.kernels import matrix

    times = [197.2, 225.2, 253.2, 281.2, 309.2, 337.2, 365.2, 393.2]  # every 28 s, 196 s in all
    lines = ["bpflab-uname=5.10.0-46-amd64", "...............s...ss"] + \
            [f"[  {at:.6f}] {LOCKUP}" for at in times] + ["after the stop"]
    # The last line comes from a grandchild that outlives the shell: qemu's place under vng.
    fake_vng(tmp_path, monkeypatch, lines[:-1], then="sh -c 'sleep 600; echo after the stop' &\nwait\n")
    started = time.monotonic()
    boot = matrix.boot_and_run("5.10", Path("/boot/vmlinuz"), "unused", tmp_path / "console.log")
    assert time.monotonic() - started < 30
    # Stopped at the first report 180 s or more after the first: 393.2 - 197.2.
    assert (boot.stuck_s, boot.trouble, boot.status) == (196, LOCKUP, None)
    out = capsys.readouterr().out
    assert "stuck for 196 s with nothing from the guest: stopping the VM" in out and "after the stop" not in out


@pytest.mark.parametrize("gaps, progress_at, stopped", [
    ([28] * 6, None, False),         # 168 s of reports: not yet
    ([28] * 7, None, True),          # 196 s: stopped
    ([28] * 3 + [160] + [28] * 3, None, False),  # a pause longer than STUCK_GAP_S starts the count again
    ([28] * 7, 3, False),            # the guest printed something in between: it moves
])
def test_stuck_means_reported_again_and_again_with_nothing_else(gaps, progress_at, stopped):
    from bpflab.kernels.matrix import StuckWatch

    watch, at, results = StuckWatch(), 100.0, []
    results.append(watch.report(f"[  {at:.6f}] {LOCKUP}"))
    for index, gap in enumerate(gaps):
        if index == progress_at:
            watch.progress()
        at += gap
        results.append(watch.report(f"[  {at:.6f}] {LOCKUP}"))
    assert (results[-1] is not None) == stopped
    assert watch.report("[  999.000000] veth0: entered promiscuous mode") is None


def test_a_stuck_kernel_is_a_failure_that_says_so(tmp_path, monkeypatch):
    from bpflab.kernels import matrix

    monkeypatch.setattr(matrix, "fetch", lambda version, archive: Path("/boot/vmlinuz-6.12.1"))
    boots = iter([matrix.Boot(vm_status=-9, release="6.12.1", trouble=LOCKUP, stuck_s=196)])
    monkeypatch.setattr(matrix, "boot_and_run", lambda *args: next(boots))
    result = matrix.run_on("6.12", run_of(tmp_path, "-q"))
    assert (result.status, result.note) == ("error", f"the kernel got stuck: {LOCKUP}; the VM was stopped after 196 s "
                                                     f"of such reports (console: {tmp_path / 'out' / 'console-6.12.log'})")


SERIAL = "-q --timeout 120 -n 0"
PARALLEL = "-n 2 -q --timeout 120"


@pytest.mark.parametrize("hardware_virt, guest_args", [(False, SERIAL), (True, PARALLEL)])
def test_emulated_guests_run_one_pytest_worker(tmp_path, monkeypatch, hardware_virt, guest_args):
    import sys

    from bpflab.kernels import matrix

    monkeypatch.setattr(matrix, "has_hardware_virt", lambda: hardware_virt)
    monkeypatch.setattr(matrix, "fetch", lambda version, archive: Path("/boot/vmlinuz-6.12.1"))
    scripts = []

    def boot(version, image, script, console, timeout_s):
        scripts.append(script)
        return matrix.Boot(vm_status=0, release="6.12.1", status=0, junit_xml=JUNIT_ONE_PASS)

    monkeypatch.setattr(matrix, "boot_and_run", boot)
    result = matrix.run_on("6.12", run_of(tmp_path, "-n", "2", "-q", "--timeout", "120"))
    (script,) = scripts
    assert f"{sys.executable} -m pytest -p no:cacheprovider --junitxml={matrix.GUEST_JUNIT} -o junit_family=xunit1 " \
           f"{guest_args}; " in script
    assert "BPFLAB_IN_VM=1 " in script  # what the guest's own policy goes by (this suite's conftest.py)
    assert (result.status, result.command) == ("pass", ["pytest", *shlex.split(guest_args)])  # what the JSON records


def test_a_failure_of_the_engine_on_one_kernel_is_that_kernels_result(tmp_path, monkeypatch, capsys):
    from bpflab.kernels import matrix

    monkeypatch.setattr(matrix, "compile_for_guests", lambda run: [])

    def run_on(version, run, archive, ignored):
        if version == "7.2":
            raise ValueError("not a kernel release: 'vmlinuz'")
        return matrix.finish(run, version, "6.12.1", 0, None, 1.0, "")

    monkeypatch.setattr(matrix, "run_on", run_on)
    assert matrix.main(["6.12", "7.2"], run_of(tmp_path, "-q"), jobs=1) == 1
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    lines = {line["version"]: (line["status"], line["note"]) for line in report["kernels"]}
    assert lines == {"6.12": ("pass", ""), "7.2": ("error", "the engine failed on this kernel: ValueError: not a "
                                                              "kernel release: 'vmlinuz'")}


def test_one_worker_drops_what_xdist_was_told():
    from bpflab.kernels.matrix import one_worker

    assert one_worker(["-n", "2", "-q", "-n4", "--numprocesses=3", "--dist", "load", "--numprocesses", "2",
                       "-k", "dnat", "--dist=loadfile"]) == ["-q", "-k", "dnat", "-n", "0"]
    assert one_worker(["-q"]) == ["-q", "-n", "0"]
    assert one_worker(["-q", "-n", "2"], xdist=False) == ["-q"]  # a project without pytest-xdist has no -n


def test_a_kernel_that_reports_lockups_while_the_guest_moves_on_is_not_stopped(tmp_path, monkeypatch):
    """Lockups reported under a loaded emulator while tests still finish (a
    line from the guest between the reports): slow, not stuck."""
    from bpflab.kernels import matrix

    lines = ["bpflab-uname=5.10.0-46-amd64"]
    for index, at in enumerate([197.2 + 28 * n for n in range(10)]):
        lines += [f"[  {at:.6f}] {LOCKUP}", f"{'.' * 70} [ {index}%]"]
    lines += ["bpflab-exit=0"]
    fake_vng(tmp_path, monkeypatch, lines)
    boot = matrix.boot_and_run("5.10", Path("/boot/vmlinuz"), "unused", tmp_path / "console.log")
    assert (boot.stuck_s, boot.status, boot.vm_status, boot.trouble) == (0, 0, 0, LOCKUP)
