"""Find, download and unpack a Debian kernel package into a cache; nothing
is installed into /boot or /lib/modules."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

# virtme-ng shares the host's root with the guest; /root is not overlaid, so
# modules unpacked here are visible inside the guest (/var/cache is not).
CACHE = Path(os.environ.get("BPFLAB_KERNEL_CACHE", Path.home() / ".cache" / "bpflab" / "kernels"))


class KernelNotFound(LookupError):
    pass


def package_for(version: str) -> str:
    """The newest linux-image package of `version` ("6.1", "6.12") the
    configured apt sources offer."""
    out = subprocess.run(["apt-cache", "search", "--names-only", f"^linux-image-{re.escape(version)}[.]"],
                         capture_output=True, text=True, check=True).stdout
    return pick_package(version, [line.split()[0] for line in out.splitlines()])


def pick_package(version: str, names: list[str]) -> str:
    """The newest plain image package of `version` among `names`."""
    # The plain amd64 flavour (modules in the same package), not cloud/rt/dbg/unsigned.
    plain = [n for n in names if re.fullmatch(rf"linux-image-{re.escape(version)}[.][0-9][0-9.+a-z-]*-amd64", n)
             and not re.search(r"-(cloud|rt|dbg)-", n) and not n.endswith("-unsigned")]
    if not plain:
        raise KernelNotFound(f"no linux-image package for kernel {version} in the apt sources "
                             "(apt-get update? another suite?)")

    def key(name: str):
        return [int(x) for x in re.findall(r"\d+", name)]

    return max(plain, key=key)


def fetch(version: str) -> Path:
    """The kernel image of `version`, unpacked (with its modules) in the cache."""
    pkg = package_for(version)
    root = CACHE / pkg
    images = sorted((root / "boot").glob("vmlinuz-*")) if root.exists() else []
    if images:
        return images[-1]
    root.mkdir(parents=True, exist_ok=True)
    download = CACHE / "downloads"
    download.mkdir(exist_ok=True)
    subprocess.run(["apt-get", "download", "-q", pkg], cwd=download, check=True, capture_output=True)
    deb = max(download.glob(f"{pkg}_*.deb"), key=lambda p: p.stat().st_mtime)
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    deb.unlink()
    images = sorted((root / "boot").glob("vmlinuz-*"))
    if not images:
        shutil.rmtree(root, ignore_errors=True)
        raise KernelNotFound(f"{pkg} holds no kernel image (a meta-package?)")
    return images[-1]
