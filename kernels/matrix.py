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

from .fetch import KernelNotFound, fetch

REPO = Path(__file__).resolve().parent.parent
# A VM that has not finished in 25 minutes is stopped and counted as a failure,
# so a hang inside a guest cannot eat CI's time limit.
VM_TIMEOUT_S = int(os.environ.get("BPFLAB_VM_TIMEOUT", 25 * 60))


def has_hardware_virt() -> bool:
    flags = Path("/proc/cpuinfo").read_text()
    return " vmx" in flags or " svm" in flags


def vng_command(image: Path, script: str, memory: str = "3G") -> list[str]:
    vng = shutil.which("vng", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if vng is None:
        raise RuntimeError("vng (virtme-ng) is missing: pip install virtme-ng")
    cmd = [vng, "--run", str(image), "--force-9p", "--memory", memory, "--cpus", "2", "--exec", script]
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
    script = (f"sh {shlex.quote(str(REPO / 'kernels' / 'guest_setup.sh'))} && cd {shlex.quote(str(REPO))} && "
              f"BPFLAB_REQUIRE_KERNEL=1 PYTHONDONTWRITEBYTECODE=1 {inner}; echo bpflab-exit=$?")
    print(f"[kernel {version}] booting {image} ...", flush=True)
    proc = subprocess.Popen(vng_command(image, script), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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


if __name__ == "__main__":
    args = sys.argv[1:]
    versions = []
    while "--kernel" in args:
        i = args.index("--kernel")
        versions.append(args[i + 1])
        del args[i:i + 2]
    sys.exit(main(versions, args))
