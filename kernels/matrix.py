"""Boot each requested kernel and run the suite inside; report which kernel
each result came from, as a table, a JUnit XML file per kernel and
build/kernel-matrix.json. The exit status is the worst of all."""
from __future__ import annotations

import base64
import dataclasses
import datetime
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

from bpflab.host.paths import REPO_ROOT
from bpflab.kernels import selection
from bpflab.kernels.fetch import Archive, KernelNotFound, fetch
from bpflab.kernels.results import KernelResult, counts_from_junit

# A VM that has not finished in time is stopped and counted as a failure, so a
# hang inside a guest cannot eat a CI job's time limit (CI sets a tighter one).
VM_TIMEOUT_S = int(os.environ.get("BPFLAB_VM_TIMEOUT", 60 * 60))
# The guest's root is uncached 9p; the same tree is exported again under this
# tag and mounted with the page cache on (guest_setup.sh), 3x faster.
CACHED_ROOT_TAG = "bpflab-root"


def has_hardware_virt() -> bool:
    flags = Path("/proc/cpuinfo").read_text()
    return " vmx" in flags or " svm" in flags


def time_scale() -> int:
    """How much slower than the host the guest runs (BPFLAB_TIME_SCALE in
    lab/patience.py): software emulation measured 10-20x here."""
    return 2 if has_hardware_virt() else 10


def cached_dirs() -> list[str]:
    """What the suite reads in the guest, to be served from the cached root:
    the system (clang, bpftool, libbpf), the Python the venv points at, the
    repository (with its venvs)."""
    dirs = ["/usr", str(Path(sys.base_prefix).resolve()), str(REPO_ROOT)]
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


RESULTS = REPO_ROOT / "build" / "kernel-matrix"
HOST = "host"
# --kernel matrix: six kernel lines, from Debian 11's to the newest Debian's
# archive offers (the same list as .github/workflows/kernels.yml).
MATRIX_KERNELS = ("5.10", "6.1", "6.12", HOST, "7.2", "newest")  # --kernel host: the suite on this machine's kernel, reported like the others
GUEST_JUNIT = "/tmp/bpflab-junit.xml"  # the guest's /tmp is its own tmpfs
_print_lock = threading.Lock()


def say(version: str, line: str) -> None:
    with _print_lock:
        print(f"[kernel {version}] {line}", flush=True)


def pytest_command(pytest_args: list[str], junit: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}",
            "-o", "junit_family=xunit1", *pytest_args]


def vm_args(pytest_args: list[str]) -> list[str]:
    """What a VM runs: the tests whose outcome can depend on the kernel (the
    `kernel` marker: they load programs, build namespaces, attach), unless
    the arguments choose with -m themselves. The others (lint, layout, the
    checksum oracle, builds with clang: 13 of 27 minutes of a 5.10 VM) give
    the same result on every kernel; the host line of the matrix runs them.
    So do the `harness` tests: they need root, but check argument parsing,
    CLI plumbing, child sessions and signals (about a third of a VM's time,
    every one of them a Python start-up of seconds under emulation)."""
    return pytest_args if any(a == "-m" or a.startswith("-m") and len(a) > 2 for a in pytest_args) \
        else [*pytest_args, "-m", "kernel and not harness"]


def one_worker(pytest_args: list[str]) -> list[str]:
    """The same arguments with the tests run in pytest's own process, one
    after the other: whatever -n (pytest-xdist) said is dropped."""
    kept, skip = [], False
    for arg in pytest_args:
        if skip:
            skip = False
        elif arg in ("-n", "--numprocesses", "--dist"):
            skip = True
        elif not (arg.startswith(("--numprocesses=", "--dist=")) or re.fullmatch(r"-n\S+", arg)):
            kept.append(arg)
    return [*kept, "-n", "0"]


# The project's Python, compiled on the host for the guests (see below).
SOURCES = ("bpflab", "loaders", "lab", "bench", "kernels", "tests", "examples", "conftest.py", "noxfile.py")


def compile_for_guests(guest_args: list[str]) -> list[str]:
    """Write the bytecode every guest process would otherwise compile again:
    guests run with PYTHONDONTWRITEBYTECODE (their root is read-only) and
    each of the hundred-odd Python processes a run starts (loaders, CLIs,
    pytest workers) compiled the project from source, seconds apiece under
    emulation. Python and pytest (its rewritten test modules) both read a
    cached file they did not write, when its source is unchanged.

    Returns the --ignore arguments for the test files in which the guests'
    arguments select nothing: the host's collection says which (selection
    by -m, -k and paths does not depend on the kernel), so a guest does not
    import 14 of 37 test modules only to deselect every test in them. If the
    host cannot collect, nothing is ignored and the guest reports why."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0",
                    *(str(REPO_ROOT / p) for p in SOURCES if (REPO_ROOT / p).exists())],
                   cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    # Collecting writes pytest's assertion-rewritten test modules (all of
    # them: deselection comes after the import).
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "selection.json"
        collect = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "bpflab.kernels.selection",
                                  "--collect-only", "-q", *guest_args],  # xdist stays out of a collection
                                 cwd=REPO_ROOT, env={**env, selection.OUT_ENV: str(out)}, check=False,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if collect.returncode != 0 or not out.exists():
            return []
        return [f"--ignore={path}" for path in json.loads(out.read_text())]


def run_on_host(pytest_args: list[str]) -> KernelResult:
    start = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    junit = RESULTS / f"junit-{HOST}.xml"
    junit.unlink(missing_ok=True)
    proc = subprocess.Popen(pytest_command(pytest_args, str(junit)), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        say(HOST, line.rstrip("\n"))
    status = proc.wait()
    return finish(HOST, os.uname().release, status, junit if junit.exists() else None, time.monotonic() - start, "",
                  pytest_args)


def run_on(version: str, pytest_args: list[str], archive: Archive | None = None,
           ignored: tuple[str, ...] | list[str] = ()) -> KernelResult:
    """Boot `version` and run pytest inside; its JUnit XML comes back through
    the console (base64 on one marked line), since the guest's root is
    read-only."""
    if version == HOST:
        return run_on_host(pytest_args)
    start = time.monotonic()
    try:
        image = fetch(version, archive)
    except (KernelNotFound, subprocess.CalledProcessError) as exc:
        say(version, f"cannot fetch: {exc}")
        return finish(version, "", 2, None, time.monotonic() - start, f"not fetched: {exc}")
    pytest_args = vm_args(pytest_args)
    notes = []
    if not has_hardware_virt():
        # Under software emulation, one pytest worker: with two, one worker's
        # XDP attach or detach (the kernel rewrites the XDP dispatcher's code)
        # ran while the other's traffic ran XDP programs through it on the
        # other vCPU, and two kernels failed in one run on 2026-11-28: 5.10
        # with both vCPUs looping in bpf_dispatcher_xdp_func, 6.12 with an
        # oops on the int3 of a half-made patch at bpf_dispatcher_xdp_func+0xa.
        # One worker costs time (pytest on 6.1: 309 s against 216; on 5.10:
        # 380 against about 350): the six kernels took 30.6 minutes, not 25.7.
        pytest_args = one_worker(pytest_args)
    say(version, f"pytest {' '.join(pytest_args)}" + (f" (and {len(ignored)} files without selected tests ignored)"
                                                       if ignored else ""))
    # --exec runs under dash; the project's own interpreter by absolute path.
    inner = " ".join(shlex.quote(a) for a in pytest_command([*pytest_args, *ignored], GUEST_JUNIT))
    setup = " ".join(shlex.quote(a) for a in ["sh", str(REPO_ROOT / "kernels" / "guest_setup.sh"), CACHED_ROOT_TAG,
                                                *cached_dirs()])
    script = (f"{setup} && cd {shlex.quote(str(REPO_ROOT))} && echo bpflab-uname=$(uname -r) && "
              f"PYTHONDONTWRITEBYTECODE=1 BPFLAB_TIME_SCALE={time_scale()} "
              f"BPFLAB_EMULATED={0 if has_hardware_virt() else 1} HYPOTHESIS_PROFILE=vm {inner}; "
              f"echo bpflab-exit=$?; [ -f {GUEST_JUNIT} ] && echo bpflab-junit=$(base64 -w0 {GUEST_JUNIT})")
    console = RESULTS / f"console-{version}.log"  # every boot of this run, one after the other
    console.unlink(missing_ok=True)
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        say(version, f"booting {image} ...")
        boot = boot_and_run(version, image, script, console)
        if boot.vm_status == -9 or boot.status is not None or boot.trouble or attempt == BOOT_ATTEMPTS:
            break
        # The VM went away silently, before the guest ran anything or while
        # the suite ran, and the kernel said nothing: the emulator's, not the
        # kernel's or the suite's (6.12's VM twice exited within seconds and
        # booted at once when asked again; 7.2's once in the middle of the
        # suite, and passed whole the next time).
        notes.append(f"boot {attempt}: {silent_exit(boot)}")
        say(version, f"{notes[-1]}: booting again")
    status, release, junit_xml = boot.status, boot.release, boot.junit_xml
    if boot.stuck_s:
        notes.append(f"the kernel got stuck: {boot.trouble}; the VM was stopped after {boot.stuck_s} s of such "
                     f"reports (console: {shown(console)})")
    elif boot.vm_status == -9:
        notes.append(f"stopped after {VM_TIMEOUT_S} s")
    elif boot.trouble:
        notes.append(f"the kernel said: {boot.trouble} (console: {shown(console)})")
    elif status is None:
        notes.append(f"the VM {silent_exit(boot)} (console: {shown(console)})")
    status = 2 if status is None else status
    note = "; ".join(notes)
    junit = None
    if junit_xml is not None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        junit = RESULTS / f"junit-{version}.xml"
        junit.write_bytes(junit_xml)
    return finish(version, release or image.name.removeprefix("vmlinuz-"), status, junit,
                  time.monotonic() - start, note or ("" if junit else "no JUnit result (the VM did not finish)"),
                  pytest_args)


BOOT_ATTEMPTS = 2


@dataclasses.dataclass
class Boot:
    vm_status: int            # vng's exit status (-9: stopped at the timeout)
    status: int | None = None  # pytest's, as the guest reported it; None: it never did
    release: str = ""         # uname -r, once the guest's script ran
    junit_xml: bytes | None = None
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
# not at VM_TIMEOUT_S (5.10's VM once sat for ten minutes with both vCPUs
# looping in bpf_dispatcher_xdp_func, and would have for the hour).
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


def boot_and_run(version: str, image: Path, script: str, console: Path) -> Boot:
    """One boot of `image` running `script`: its output shown line by line,
    the kernel's console only where it says the kernel is in trouble; all of
    it kept in `console`."""
    # A session of its own, so that stopping the VM stops qemu too (vng's
    # grandchild, which holds the pipe open).
    proc = subprocess.Popen(vng_command(image, script), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True,
                            env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:/usr/sbin:"
                                                       f"/sbin:{os.environ.get('PATH', '')}"})
    boot = Boot(vm_status=0)
    timer = threading.Timer(VM_TIMEOUT_S, stop_vm, (proc,))
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
                elif line.startswith("bpflab-junit="):
                    try:
                        boot.junit_xml = base64.b64decode(line.split("=", 1)[1], validate=True)
                    except ValueError:  # a kernel message printed into the line
                        say(version, "the JUnit result came back garbled (see the console log)")
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
    return boot


def stop_vm(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finish(version: str, release: str, status: int, junit: Path | None, seconds: float, note: str,
           pytest_args: list[str] = ()) -> KernelResult:
    counts = counts_from_junit(junit, suite_name=f"kernel-{release or version}") if junit else None
    return KernelResult(version=version, release=release, status=status, seconds=round(seconds, 1),
                        junit=shown(junit) if junit else None, note=note, pytest_args=list(pytest_args),
                        **(counts or {}))


def shown(path: Path) -> str:
    """A path as the report shows it: relative to the repository when inside."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def default_jobs() -> int:
    """VMs at once that fit: two vCPUs and 3 GiB each."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return max(1, min((os.cpu_count() or 1) // 2, int(mem_gib // 4)))


def main(versions: list[str], pytest_args: list[str], jobs: int | None = None) -> int:
    jobs = jobs or default_jobs()
    started = datetime.datetime.now(datetime.UTC)
    wall = time.monotonic()
    archive = Archive()
    ignored = compile_for_guests(vm_args(pytest_args)) if any(v != HOST for v in versions) else []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda v: run_guarded(v, pytest_args, archive, ignored), versions))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    date = started.isoformat(timespec="seconds")
    out = RESULTS.parent / "kernel-matrix.json"
    earlier = earlier_results(out, {r.version for r in results})
    report = {"date": date, "host_kernel": os.uname().release, "jobs": jobs,
              "emulated": not has_hardware_virt(), "pytest_args": pytest_args,
              "seconds": round(time.monotonic() - wall, 1),
              "kernels": earlier + [{**r.as_json(), "date": date} for r in results]}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nkernel matrix ({jobs} at once, {report['seconds']:.0f} s in all; {shown(out)}):")
    for r in results:
        print("  " + r.line())
        for reason, n in r.skipped_reasons.items():
            print(f"      skipped {n}: {reason}")
    for line in earlier:
        print(f"  (kept from {line['date']}: {line['version']} {line['release']}, {line['passed']} passed, "
              f"{line['skipped']} skipped, {line['failed'] + line['errors']} failed)")
    return max(r.status for r in results)


def run_guarded(version: str, pytest_args: list[str], archive: Archive, ignored: list[str]) -> KernelResult:
    """run_on, with a failure of the matrix's own code on one kernel counted
    as that kernel's failure: the other kernels' results are still reported."""
    start = time.monotonic()
    try:
        return run_on(version, pytest_args, archive, ignored)
    except Exception as exc:  # reported as this kernel's result
        say(version, f"the matrix failed on this kernel: {exc!r}")
        return finish(version, "", 2, None, time.monotonic() - start,
                      f"the matrix failed on this kernel: {type(exc).__name__}: {exc}")


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


def split_kernels(args: list[str]) -> tuple[list[str], list[str]]:
    """--kernel VERSION / --kernel=VERSION (repeatable) out of the pytest arguments."""
    versions, _, rest = split_matrix_args(args)
    return versions, rest


def split_matrix_args(args: list[str]) -> tuple[list[str], int | None, list[str]]:
    """(--kernel versions, -j N / --jobs N, the rest: pytest's)."""
    versions, jobs, rest, args = [], None, [], list(args)
    while args:
        arg = args.pop(0)
        if arg in ("--kernel", "--jobs"):
            if not args:
                raise ValueError(f"{arg} needs a value, e.g. {arg} {'6.1' if arg == '--kernel' else '2'}")
            value = args.pop(0)
        elif arg.startswith(("--kernel=", "--jobs=")):
            arg, value = arg.split("=", 1)
        elif arg == "-j" or (arg.startswith("-j") and arg[2:].isdigit()):
            arg, value = "--jobs", arg[2:] or (args.pop(0) if args else "")
        else:
            rest.append(arg)
            continue
        if arg == "--kernel":
            versions.extend(MATRIX_KERNELS if value == "matrix" else [value])
        elif not value.isdigit() or int(value) < 1:
            raise ValueError(f"--jobs {value!r}: a number of VMs at once, 1 or more")
        else:
            jobs = int(value)
    return versions, jobs, rest


if __name__ == "__main__":
    try:
        kernels, jobs, pytest_args = split_matrix_args(sys.argv[1:])
    except ValueError as exc:
        print(f"python -m bpflab.kernels.matrix: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(kernels, pytest_args, jobs))
