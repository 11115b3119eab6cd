"""Boot each requested kernel and run the suite inside; report which kernel
each result came from. The exit status is the worst of all."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bpflab.host.paths import REPO_ROOT
from bpflab.kernels.fetch import KernelNotFound, fetch

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
    repository (with its venvs) and the apt lists (kernels.fetch), which
    virtme-ng hides under a tmpfs."""
    dirs = ["/usr", str(Path(sys.base_prefix).resolve()), str(REPO_ROOT), "/var/lib/apt/lists"]
    return [d for i, d in enumerate(dirs) if not any(d.startswith(p + "/") or d == p for p in dirs[:i])]


def vng_command(image: Path, script: str, memory: str = "3G") -> list[str]:
    vng = shutil.which("vng", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if vng is None:
        raise RuntimeError("vng (virtme-ng) is missing: pip install virtme-ng")
    cmd = [vng, "--run", str(image), "--force-9p", "--memory", memory, "--cpus", "2",
           f"--qemu-opts=-virtfs local,path=/,mount_tag={CACHED_ROOT_TAG},security_model=none,readonly=on",
           "--exec", script]
    if not has_hardware_virt():
        # /dev/kvm opens here but cannot run a stock kernel: vng would hang.
        cmd.insert(3, "--disable-kvm")
    return cmd


def run_on(version: str, pytest_args: list[str]) -> tuple[int, str, float]:
    """(exit status, last line of pytest's output, seconds) for one kernel."""
    start = time.monotonic()
    try:
        image = fetch(version)
    except (KernelNotFound, subprocess.CalledProcessError) as exc:
        print(f"[kernel {version}] cannot fetch: {exc}", flush=True)
        return 2, "not fetched", time.monotonic() - start
    # --exec runs under dash; the project's own interpreter by absolute path.
    inner = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args])
    setup = " ".join(shlex.quote(a) for a in ["sh", str(REPO_ROOT / "kernels" / "guest_setup.sh"), CACHED_ROOT_TAG,
                                                *cached_dirs()])
    script = (f"{setup} && cd {shlex.quote(str(REPO_ROOT))} && PYTHONDONTWRITEBYTECODE=1 "
              f"BPFLAB_TIME_SCALE={time_scale()} BPFLAB_EMULATED={0 if has_hardware_virt() else 1} {inner}; "
              "echo bpflab-exit=$?")
    print(f"[kernel {version}] booting {image} ...", flush=True)
    proc = subprocess.Popen(vng_command(image, script), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:/usr/sbin:"
                                                                  f"/sbin:{os.environ.get('PATH', '')}"})
    status, summary = 2, "no result (the VM did not finish)"
    timer = threading.Timer(VM_TIMEOUT_S, proc.kill)
    timer.start()
    for line in proc.stdout:  # vng's output is lost unless it goes through a pipe
        line = line.rstrip("\n")
        if line.startswith("bpflab-exit="):
            status = int(line.split("=")[1])
            continue
        print(f"[kernel {version}] {line}", flush=True)
        if " passed" in line or " failed" in line or " error" in line:
            summary = line.strip("= ")
    proc.wait()
    timer.cancel()
    if proc.returncode == -9:
        summary = f"stopped after {VM_TIMEOUT_S} s"
    return status, summary, time.monotonic() - start


def main(versions: list[str], pytest_args: list[str]) -> int:
    results = {v: run_on(v, pytest_args) for v in versions}
    print("\nkernel matrix:")
    for version, (status, summary, seconds) in results.items():
        verdict = "PASS" if status == 0 else "FAIL"
        print(f"  {version:<8} {verdict}  {summary}  ({seconds:.0f} s)")
    return max(status for status, _, _ in results.values())


def split_kernels(args: list[str]) -> tuple[list[str], list[str]]:
    """--kernel VERSION / --kernel=VERSION (repeatable) out of the pytest arguments."""
    versions, rest, args = [], [], list(args)
    while args:
        arg = args.pop(0)
        if arg == "--kernel":
            if not args:
                raise ValueError("--kernel needs a version, e.g. --kernel 6.1")
            versions.append(args.pop(0))
        elif arg.startswith("--kernel="):
            versions.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return versions, rest


if __name__ == "__main__":
    try:
        kernels, pytest_args = split_kernels(sys.argv[1:])
    except ValueError as exc:
        sys.exit(f"python -m bpflab.kernels.matrix: error: {exc}")
    sys.exit(main(kernels, pytest_args))
