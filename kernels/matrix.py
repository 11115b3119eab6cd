"""Run a command on other kernels: boot each requested kernel in a VM
(virtme-ng: KVM when it works, software emulation when not, the host's root
read-only) and run the command inside, in the project's directory; report
which kernel each result came from, as a table, a JUnit XML file per kernel
(when the command is pytest) and results.json. The engine of `bpflab
kernels`, for anyone's project (bpflab.kernels.cli), and of this
repository's kernel matrix (nox -s kernel).

A stuck kernel is told from a slow one (it keeps reporting lockups or
stalls with nothing from the guest: stopped then, not at the timeout); a VM
that goes away silently is booted once more; the guest's console is kept."""
from __future__ import annotations

import base64
import dataclasses
import datetime
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bpflab.host.interrupts import cleaned
from bpflab.kernels import selection
from bpflab.kernels.fetch import Archive, KernelNotFound, fetch
from bpflab.kernels.results import KernelResult, counts_from_junit

# A VM that has not finished in time is stopped and counted as a failure, so a
# hang inside a guest cannot eat a CI job's time limit (CI sets a tighter one).
VM_TIMEOUT_S = int(os.environ.get("BPFLAB_VM_TIMEOUT", 60 * 60))
# The guest's root is uncached 9p; the same tree is exported again under this
# tag and mounted with the page cache on (guest_setup.sh), 3x faster.
CACHED_ROOT_TAG = "bpflab-root"
GUEST_SETUP = Path(__file__).with_name("guest_setup.sh")
# Set in every guest: a project's own conftest may choose what runs there by it.
IN_VM_ENV = "BPFLAB_IN_VM"


@dataclasses.dataclass
class Run:
    """What to run on each kernel, and where."""

    project: Path                 # the command's working directory: the guests see it (read-write, in memory)
    command: list[str]            # ["pytest", ...] or any command line
    out: Path                     # results.json, junit-VERSION.xml, console-VERSION.log
    timeout_s: int = VM_TIMEOUT_S  # a VM still running after this is stopped
    # A file the command writes, named by the COLLECT_ENV variable it is
    # given, brought back from each kernel as out/<collect with {version}>.
    collect: str | None = None

    def collected(self, version: str) -> Path | None:
        return self.out / self.collect.format(version=version) if self.collect else None

    @property
    def pytest(self) -> bool:
        return Path(self.command[0]).name in ("pytest", "py.test") or self.command[:3] in (
            [sys.executable, "-m", "pytest"], ["python", "-m", "pytest"], ["python3", "-m", "pytest"])

    @property
    def pytest_args(self) -> list[str]:
        return self.command[3:] if self.command[1:3] == ["-m", "pytest"] else self.command[1:]


def has_hardware_virt() -> bool:
    flags = Path("/proc/cpuinfo").read_text()
    return " vmx" in flags or " svm" in flags


def time_scale() -> int:
    """How much slower than the host the guest runs (BPFLAB_TIME_SCALE, which
    bpflab.host.waits reads): software emulation measured 10-20x here."""
    return 2 if has_hardware_virt() else 10


def cached_dirs(project: Path) -> list[str]:
    """What the command reads in the guest, to be served from the cached
    root: the system (clang, bpftool, libbpf), the Python the virtualenv
    points at, the virtualenv bpflab runs from, the project."""
    dirs = ["/usr", str(Path(sys.base_prefix).resolve()), str(Path(sys.prefix).resolve()), str(project.resolve())]
    return [d for i, d in enumerate(dirs) if not any(d.startswith(p + "/") or d == p for p in dirs[:i])]


def vng_command(image: Path, script: str, memory: str = "3G") -> list[str]:
    vng = shutil.which("vng", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if vng is None:
        raise RuntimeError("vng (virtme-ng) is missing: pip install virtme-ng")
    # --verbose: the kernel's console too, so a guest that dies says why
    # (boot_and_run keeps it out of the output but for trouble).
    cmd = [vng, "--run", str(image), "--force-9p", "--memory", memory, "--cpus", "2", "--verbose",
           f"--qemu-opts=-virtfs local,path=/,mount_tag={CACHED_ROOT_TAG},security_model=none,readonly=on",
           "--exec", script]
    if not has_hardware_virt():
        # /dev/kvm opens here but cannot run a stock kernel: vng would hang.
        cmd.insert(3, "--disable-kvm")
    return cmd


HOST = "host"
# --kernel matrix: six kernel lines, from Debian 11's to the newest Debian's
# archive offers (the same list as .github/workflows/kernels.yml).
MATRIX_KERNELS = ("5.10", "6.1", "6.12", HOST, "7.2", "newest")  # --kernel host: this machine's kernel, reported like the others
GUEST_JUNIT = "/tmp/bpflab-junit.xml"  # the guest's /tmp is its own tmpfs
GUEST_COLLECT = "/tmp/bpflab-collect"
COLLECT_ENV = "BPFLAB_COLLECT"  # where the command writes what Run.collect brings back
_print_lock = threading.Lock()


def say(version: str, line: str) -> None:
    with _print_lock:
        print(f"[kernel {version}] {line}", flush=True)


def guest_command(run: Run, junit: str | None) -> list[str]:
    """The command as it runs: pytest by this Python (the virtualenv bpflab
    runs from), with its JUnit XML where `junit` says; anything else as
    given, its program found on the host's PATH."""
    if not run.pytest:
        program = shutil.which(run.command[0]) or run.command[0]
        return [program, *run.command[1:]]
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
            *([f"--junitxml={junit}", "-o", "junit_family=xunit1"] if junit else []), *run.pytest_args]


def has_xdist() -> bool:
    """Whether the pytest this Python runs has pytest-xdist (and so -n)."""
    return importlib.util.find_spec("xdist") is not None


def one_worker(pytest_args: list[str], xdist: bool = True) -> list[str]:
    """The same arguments with the tests run in pytest's own process, one
    after the other: whatever -n (pytest-xdist) said is dropped, and, where
    xdist is installed, -n 0 overrides what a configuration file says."""
    kept, skip = [], False
    for arg in pytest_args:
        if skip:
            skip = False
        elif arg in ("-n", "--numprocesses", "--dist"):
            skip = True
        elif not (arg.startswith(("--numprocesses=", "--dist=")) or re.fullmatch(r"-n\S+", arg)):
            kept.append(arg)
    return [*kept, "-n", "0"] if xdist else kept


# Not the project's own Python: bytecode there is not worth compiling.
NOT_SOURCES = {".git", ".venv", "venv", ".nox", ".tox", "build", "node_modules", "__pycache__", ".hypothesis"}


def project_sources(project: Path) -> list[Path]:
    """The project's top-level entries holding its Python, skipping
    virtualenvs, VCS and build output."""
    return sorted(p for p in project.iterdir() if p.name not in NOT_SOURCES and not p.name.startswith(".")
                  and (p.is_dir() or p.suffix == ".py"))


def compile_for_guests(run: Run) -> list[str]:
    """Write the bytecode every guest process would otherwise compile again:
    guests run with PYTHONDONTWRITEBYTECODE (their root is read-only) and
    each of the hundred-odd Python processes a run starts (loaders, CLIs,
    pytest workers) compiled the project from source, seconds apiece under
    emulation. Python and pytest (its rewritten test modules) both read a
    cached file they did not write, when its source is unchanged.

    For pytest, returns the --ignore arguments for the test files in which
    the guests' arguments select nothing: the host's collection, with the
    guests' environment, says which (selection by -m, -k and paths does not
    depend on the kernel), so a guest does not import test modules only to
    deselect every test in them. If the host cannot collect, nothing is
    ignored and the guest reports why."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *map(str, project_sources(run.project))],
                   cwd=run.project, env=env, check=False, stdout=subprocess.DEVNULL)
    if not run.pytest:
        return []
    # Collecting writes pytest's assertion-rewritten test modules (all of
    # them: deselection comes after the import).
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "selection.json"
        collect = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "bpflab.kernels.selection",
                                  "--collect-only", "-q", *one_worker(run.pytest_args, has_xdist())],
                                 cwd=run.project, env={**env, IN_VM_ENV: "1", selection.OUT_ENV: str(out)}, check=False,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if collect.returncode != 0 or not out.exists():
            return []
        return [f"--ignore={path}" for path in json.loads(out.read_text())]


def run_on_host(run: Run) -> KernelResult:
    start = time.monotonic()
    run.out.mkdir(parents=True, exist_ok=True)
    junit = run.out / f"junit-{HOST}.xml"
    junit.unlink(missing_ok=True)
    collected = run.collected(HOST)
    env = dict(os.environ)
    if collected:
        collected.unlink(missing_ok=True)
        env[COLLECT_ENV] = str(collected)
    # A session of its own: stopped with everything it started, as a VM is.
    proc = subprocess.Popen(guest_command(run, str(junit)), cwd=run.project, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True, env=env)
    RUNNING[HOST] = proc
    try:
        for line in proc.stdout:
            say(HOST, line.rstrip("\n"))
        status = proc.wait()
    finally:
        stop_vm(proc)  # interrupted: the command goes with us
        RUNNING.pop(HOST, None)
    return finish(run, HOST, os.uname().release, status, junit if junit.exists() else None, time.monotonic() - start,
                  "")


def run_on(version: str, run: Run, archive: Archive | None = None,
           ignored: tuple[str, ...] | list[str] = ()) -> KernelResult:
    """Boot `version` and run the command inside; pytest's JUnit XML comes
    back through the console (base64 on one marked line), since the guest
    writes nothing to the host."""
    if version == HOST:
        return run_on_host(run)
    start = time.monotonic()
    try:
        image = fetch(version, archive)
    except (KernelNotFound, subprocess.CalledProcessError) as exc:
        say(version, f"cannot fetch: {exc}")
        return finish(run, version, "", None, None, time.monotonic() - start, f"not fetched: {exc}")
    notes = []
    command = run.command
    if run.pytest and not has_hardware_virt():
        # Under software emulation, one pytest worker: with two, one worker's
        # XDP attach or detach (the kernel rewrites the XDP dispatcher's code)
        # races the other's traffic through it on the other vCPU, which can
        # take an emulated kernel down (docs/explanation/kernel-matrix.md).
        command = [run.command[0], *(["-m", "pytest"] if run.command[1:3] == ["-m", "pytest"] else []),
                   *one_worker(run.pytest_args, has_xdist()), *ignored]
    guest = dataclasses.replace(run, command=command)
    say(version, " ".join(guest.command) + (f" (and {len(ignored)} files without selected tests ignored)"
                                            if ignored and run.pytest else ""))
    # --exec runs under dash; the command by absolute path.
    inner = " ".join(shlex.quote(a) for a in guest_command(guest, GUEST_JUNIT if run.pytest else None))
    setup = " ".join(shlex.quote(a) for a in ["sh", str(GUEST_SETUP), CACHED_ROOT_TAG, str(run.project.resolve()),
                                                *cached_dirs(run.project)])
    env = {"PYTHONDONTWRITEBYTECODE": "1", "BPFLAB_TIME_SCALE": str(time_scale()),
           "BPFLAB_EMULATED": "0" if has_hardware_virt() else "1", IN_VM_ENV: "1",
           **({COLLECT_ENV: GUEST_COLLECT} if run.collect else {})}
    # What comes back does so through the console, base64 on one marked line.
    back = [f"[ -f {GUEST_JUNIT} ] && echo bpflab-junit=$(base64 -w0 {GUEST_JUNIT})"] if run.pytest else []
    back += [f"[ -f {GUEST_COLLECT} ] && echo bpflab-collect=$(base64 -w0 {GUEST_COLLECT})"] if run.collect else []
    script = (f"{setup} && cd {shlex.quote(str(run.project.resolve()))} && echo bpflab-uname=$(uname -r) && "
              f"{' '.join(f'{k}={v}' for k, v in env.items())} {inner}; echo bpflab-exit=$?; "
              + ("; ".join(back) or "true"))
    console = run.out / f"console-{version}.log"  # every boot of this run, one after the other
    console.unlink(missing_ok=True)
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        if STOPPING.is_set():
            return finish(run, version, "", None, None, time.monotonic() - start, "not booted: interrupted")
        say(version, f"booting {image} ...")
        boot = boot_and_run(version, image, script, console, run.timeout_s)
        if boot.vm_status == -9 or boot.status is not None or boot.trouble or attempt == BOOT_ATTEMPTS:
            break
        # The VM went away silently, before the guest ran anything or while
        # the command ran, and the kernel said nothing: the emulator's, not
        # the kernel's or the command's, and gone when booted again.
        notes.append(f"boot {attempt}: {silent_exit(boot)}")
        say(version, f"{notes[-1]}: booting again")
    status, release, junit_xml = boot.status, boot.release, boot.junit_xml
    collected = run.collected(version)
    if collected:
        collected.unlink(missing_ok=True)
        if boot.collected is not None:
            collected.write_bytes(boot.collected)
    if boot.stuck_s:
        notes.append(f"the kernel got stuck: {boot.trouble}; the VM was stopped after {boot.stuck_s} s of such "
                     f"reports (console: {shown(console, run)})")
    elif boot.vm_status == -9:
        notes.append(f"stopped after {run.timeout_s} s")
    elif boot.trouble:
        notes.append(f"the kernel said: {boot.trouble} (console: {shown(console, run)})")
    elif status is None:
        notes.append(f"the VM {silent_exit(boot)} (console: {shown(console, run)})")
    note = "; ".join(notes)
    junit = None
    if junit_xml is not None:
        run.out.mkdir(parents=True, exist_ok=True)
        junit = run.out / f"junit-{version}.xml"
        junit.write_bytes(junit_xml)
    elif run.pytest and not note:
        note = f"pytest ran (exit {status}) but wrote no JUnit result" if status is not None else \
            "no JUnit result (the VM did not finish)"
    return finish(guest, version, release or image.name.removeprefix("vmlinuz-"), status, junit,
                  time.monotonic() - start, note, console)


BOOT_ATTEMPTS = 2


@dataclasses.dataclass
class Boot:
    vm_status: int            # vng's exit status (-9: stopped at the timeout)
    status: int | None = None  # pytest's, as the guest reported it; None: it never did
    release: str = ""         # uname -r, once the guest's script ran
    junit_xml: bytes | None = None
    collected: bytes | None = None  # the file Run.collect names, as the guest left it
    trouble: str = ""         # the first kernel message that says the kernel is in trouble
    stuck_s: int = 0          # stopped after the kernel reported itself stuck this long


def silent_exit(boot: Boot) -> str:
    when = "while the suite ran" if boot.release else "before the guest ran anything"
    return f"exited (status {boot.vm_status}) {when}, the kernel silent"


# A console line of the kernel's own ("[   12.345678] ...", the guest's clock
# captured), and those of them that mean the guest's kernel, not the
# emulator, is at fault.
KERNEL_LINE = re.compile(r"^\[\s*(\d+\.\d+)\] ")
# x86's boot decompressor speaks before the kernel's timestamps start.
BOOT_NOISE = re.compile(r"^(Probing EDD|Memory KASLR|Poking KASLR)")
# Trouble that means the kernel stopped making progress. Reported again and
# again (a soft lockup every ~28 s, an RCU stall every minute, a hung task
# every two) with nothing from the guest in between for STUCK_FOR_S seconds
# of the guest's clock, the kernel is stuck for good: the VM is stopped then,
# not at VM_TIMEOUT_S.
KERNEL_STUCK = re.compile(r"soft lockup|hard LOCKUP|blocked for more than|rcu_\w+ (?:self-)?detected stalls")
KERNEL_TROUBLE = re.compile(r"Kernel panic|BUG:|Oops|WARNING:|Out of memory|general protection fault|"
                            + KERNEL_STUCK.pattern)
STUCK_FOR_S = 180.0
STUCK_GAP_S = 150.0  # reports further apart than this start the count again


class StuckWatch:
    """Whether the kernel's reports of being stuck, with no guest output in
    between, have gone on for STUCK_FOR_S seconds of the guest's clock."""

    def __init__(self):
        self.since: float | None = None
        self.last: float | None = None

    def progress(self) -> None:
        self.since = self.last = None

    def report(self, line: str) -> float | None:
        """Seconds the kernel has reported itself stuck once that reaches
        STUCK_FOR_S (None before)."""
        at = KERNEL_LINE.match(line)
        if not (at and KERNEL_STUCK.search(line)):
            return None
        now = float(at.group(1))
        if self.last is None or now - self.last > STUCK_GAP_S:
            self.since = now
        self.last = now
        return now - self.since if now - self.since >= STUCK_FOR_S else None


# The VMs running now, by version: an interrupted run stops every one (and
# boots no more).
RUNNING: dict[str, subprocess.Popen] = {}
STOPPING = threading.Event()


def boot_and_run(version: str, image: Path, script: str, console: Path, timeout_s: float = VM_TIMEOUT_S) -> Boot:
    """One boot of `image` running `script`: its output shown line by line,
    the kernel's console only where it says the kernel is in trouble; all of
    it kept in `console`."""
    # A session of its own, so that stopping the VM stops qemu too (vng's
    # grandchild, which holds the pipe open).
    proc = subprocess.Popen(vng_command(image, script), cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True,
                            env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:/usr/sbin:"
                                                       f"/sbin:{os.environ.get('PATH', '')}"})
    RUNNING[version] = proc
    boot = Boot(vm_status=0)
    timer = threading.Timer(timeout_s, stop_vm, (proc,))
    timer.start()
    stuck = StuckWatch()
    console.parent.mkdir(parents=True, exist_ok=True)
    try:
        with console.open("a") as log:
            log.write(f"=== {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')} booting {image}\n")
            for line in proc.stdout:  # vng's output is lost unless it goes through a pipe
                line = line.rstrip("\n")
                log.write(line[:300] + "\n")
                if line.startswith("bpflab-exit="):
                    boot.status = int(line.split("=")[1])
                elif line.startswith("bpflab-uname="):
                    boot.release = line.split("=", 1)[1].strip()
                elif line.startswith(("bpflab-junit=", "bpflab-collect=")):
                    what = line.split("=", 1)[0].removeprefix("bpflab-")
                    try:
                        data = base64.b64decode(line.split("=", 1)[1], validate=True)
                    except ValueError:  # a kernel message printed into the line
                        say(version, f"the {what} file came back garbled (see the console log)")
                    else:
                        setattr(boot, "junit_xml" if what == "junit" else "collected", data)
                elif KERNEL_LINE.match(line) or BOOT_NOISE.match(line):
                    if KERNEL_TROUBLE.search(line):
                        boot.trouble = boot.trouble or KERNEL_LINE.sub("", line).strip()
                        say(version, line)
                    stuck_for = stuck.report(line)
                    if stuck_for is not None and not boot.stuck_s:
                        boot.stuck_s = round(stuck_for)
                        say(version, f"the kernel has reported itself stuck for {boot.stuck_s} s with nothing "
                                     f"from the guest: stopping the VM")
                        stop_vm(proc)
                else:
                    stuck.progress()
                    say(version, line)
        boot.vm_status = proc.wait()
    finally:
        timer.cancel()
        stop_vm(proc)  # on the way out of an interrupted run too
        RUNNING.pop(version, None)
    return boot


def stop_vm(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finish(run: Run, version: str, release: str, exit_status: int | None, junit: Path | None, seconds: float,
           note: str, console: Path | None = None) -> KernelResult:
    """One kernel's result. `exit_status`: the command's, as the guest
    reported it (None: it never did: the VM failed, or no kernel)."""
    counts = counts_from_junit(junit, suite_name=f"kernel-{release or version}") if junit else None
    if exit_status is None:
        status = "error"
    elif run.pytest:  # pytest's own statuses: 1 tests failed; 2-5 it could not run them
        status = "pass" if exit_status == 0 else "fail" if exit_status == 1 else "error"
    else:
        status = "pass" if exit_status == 0 else "fail"
    return KernelResult(version=version, release=release, status=status, exit=exit_status, seconds=round(seconds, 1),
                        junit=shown(junit, run) if junit else None, note=note,
                        console=shown(console, run) if console and console.exists() else None, command=run.command,
                        **(counts or {}))


def shown(path: Path, run: Run) -> str:
    """A path as the report shows it: relative to the project when inside."""
    path, project = path.resolve(), run.project.resolve()
    return str(path.relative_to(project)) if path.is_relative_to(project) else str(path)


def default_jobs() -> int:
    """VMs at once that fit: two vCPUs each, and 4 GiB (a guest's 3 GiB
    and room for qemu)."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return max(1, min((os.cpu_count() or 1) // 2, int(mem_gib // 4)))


def run_all(versions: list[str], run: Run, jobs: int) -> list[KernelResult]:
    """The command on every kernel of `versions`, `jobs` VMs at once. An
    interrupt stops every VM (and boots no more) before it goes on up."""
    archive = Archive()
    run.out.mkdir(parents=True, exist_ok=True)
    ignored = compile_for_guests(run) if any(v != HOST for v in versions) else []
    STOPPING.clear()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        return list(pool.map(lambda v: run_guarded(v, run, archive, ignored), versions))
    except BaseException:  # interrupted: no VM boots any more, the running ones stop
        STOPPING.set()
        for version, proc in list(RUNNING.items()):
            stop_vm(proc)
            cleaned("stopped the command on this machine's kernel" if version == HOST else f"stopped the VM of {version}")
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def main(versions: list[str], run: Run, jobs: int | None = None) -> int:
    """The command on every kernel of `versions`, `jobs` VMs at once: the
    table, results.json; 0 when every kernel passed, else 1."""
    jobs = jobs or default_jobs()
    started = datetime.datetime.now(datetime.UTC)
    wall = time.monotonic()
    results = run_all(versions, run, jobs)
    date = started.isoformat(timespec="seconds")
    out = run.out / "results.json"
    earlier = earlier_results(out, {r.version for r in results})
    report = {"date": date, "host_kernel": os.uname().release, "jobs": jobs, "emulated": not has_hardware_virt(),
              "command": run.command, "seconds": round(time.monotonic() - wall, 1),
              "kernels": earlier + [{**r.as_json(), "date": date} for r in results]}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nkernels ({jobs} at once, {report['seconds']:.0f} s in all; {shown(out, run)}):")
    for r in results:
        print("  " + r.line())
        for reason, n in r.skipped_reasons.items():
            print(f"      skipped {n}: {reason}")
    for line in earlier:
        print(f"  (kept from {line['date']}: {line['version']} {line['release']} {line['status']})")
    return 0 if all(r.status == "pass" for r in results) else 1


def run_guarded(version: str, run: Run, archive: Archive, ignored: list[str]) -> KernelResult:
    """run_on, with a failure of the engine's own code on one kernel counted
    as that kernel's error: the other kernels' results are still reported."""
    start = time.monotonic()
    try:
        return run_on(version, run, archive, ignored)
    except Exception as exc:  # reported as this kernel's result
        say(version, f"the engine failed on this kernel: {exc!r}")
        return finish(run, version, "", None, None, time.monotonic() - start,
                      f"the engine failed on this kernel: {type(exc).__name__}: {exc}")


def earlier_results(report: Path, rerun: set[str]) -> list[dict]:
    """The kernels an earlier run wrote into the report and this one did not
    run again, each with the date it ran: one kernel per invocation (a CI
    job, a kernel run again after a fix) still adds up to one matrix."""
    try:
        kernels = json.loads(report.read_text()).get("kernels", [])
    except (FileNotFoundError, ValueError):
        return []
    previous_date = json.loads(report.read_text()).get("date", "")
    return [{**k, "date": k.get("date", previous_date)} for k in kernels if k.get("version") not in rerun]
