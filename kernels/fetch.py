"""Find, download and unpack a Debian kernel package into a cache; nothing
is installed into /boot or /lib/modules, and the machine's apt
configuration is never touched: the kernels come through a private one in
the cache (its own sources list, lists and package cache) that names every
suite of Debian's archive, from bullseye (5.10) to experimental."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

# virtme-ng shares the host's root with the guest; /root is not overlaid, so
# modules unpacked here are visible inside the guest (/var/cache is not).
CACHE = Path(os.environ.get("BPFLAB_KERNEL_CACHE", Path.home() / ".cache" / "bpflab" / "kernels"))
MIRROR = os.environ.get("BPFLAB_DEBIAN_MIRROR", "http://deb.debian.org")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# (archive, suite): where Debian keeps kernel images, oldest first.
SUITES = [
    ("debian", "bullseye"), ("debian-security", "bullseye-security"),
    ("debian", "bookworm"), ("debian", "bookworm-updates"), ("debian-security", "bookworm-security"),
    ("debian", "bookworm-backports"),
    ("debian", "trixie"), ("debian-security", "trixie-security"), ("debian", "trixie-backports"),
    ("debian", "sid"), ("debian", "experimental"),
]
LISTS_MAX_AGE_S = 24 * 3600


class KernelNotFound(LookupError):
    pass


class Archive:
    """A private apt configuration under `root`: apt-get and apt-cache read
    only its sources list and write only its lists and cache."""

    def __init__(self, root: Path = CACHE / "apt"):
        self.root = root
        self._images: list[str] | None = None
        self._lock = threading.Lock()  # VMs started at once share one archive

    @property
    def sources(self) -> Path:
        return self.root / "sources.list"

    def options(self) -> list[str]:
        return ["-o", f"Dir::Etc::SourceList={self.sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", f"Dir::State::Lists={self.root / 'lists'}", "-o", f"Dir::Cache={self.root / 'cache'}",
                "-o", "Dir::Etc::Preferences=/dev/null", "-o", "Dir::Etc::PreferencesParts=/dev/null",
                "-o", "Acquire::Languages=none", "-o", "APT::Architectures=amd64"]

    def sources_text(self) -> str:
        return "".join(f"deb [signed-by={KEYRING}] {MIRROR}/{archive} {suite} main\n" for archive, suite in SUITES)

    def refresh(self, max_age_s: float = LISTS_MAX_AGE_S) -> None:
        """apt-get update into the private lists, unless they are fresh."""
        with self._lock:
            self._refresh(max_age_s)

    def _refresh(self, max_age_s: float) -> None:
        stamp = self.root / "updated"
        if stamp.exists() and time.time() - stamp.stat().st_mtime < max_age_s \
                and self.sources.exists() and self.sources.read_text() == self.sources_text():
            return
        for d in ("lists/partial", "cache/archives/partial"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self.sources.write_text(self.sources_text())
        result = subprocess.run(["apt-get", *self.options(), "update", "-q"], capture_output=True, text=True)
        if result.returncode != 0:
            raise KernelNotFound(f"apt-get update of the kernel archive failed: {result.stderr.strip()[-300:]}")
        stamp.touch()

    def image_packages(self) -> list[str]:
        with self._lock:
            if self._images is None:  # apt-cache takes seconds over every suite's lists
                out = self._cache("search", "--names-only", "^linux-image-[0-9]")
                self._images = [line.split()[0] for line in out.splitlines()]
            return self._images

    def depends(self, package: str) -> list[str]:
        return parse_depends(self._cache("show", package))

    def download(self, packages: list[str], into: Path) -> list[Path]:
        subprocess.run(["apt-get", *self.options(), "download", "-q", *packages], cwd=into, check=True,
                       capture_output=True)
        # A package may be asked for as NAME/SUITE or NAME=VERSION; its file is NAME_*.deb.
        names = [re.split(r"[/=]", p)[0] for p in packages]
        return [max(into.glob(f"{name}_*.deb"), key=lambda f: f.stat().st_mtime) for name in names]

    def _cache(self, *args: str) -> str:
        return subprocess.run(["apt-cache", *self.options(), *args], capture_output=True, text=True,
                              check=True).stdout


def version_key(name: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", name)]


def plain_images(names: list[str]) -> list[str]:
    """The plain amd64 flavour (not cloud/rt/dbg/unsigned, not a release
    candidate's unversioned name like linux-image-7.3-amd64)."""
    return [n for n in names if re.fullmatch(r"linux-image-\d+[.]\d+[.][0-9][0-9.+a-z-]*-amd64", n)
            and not re.search(r"-(cloud|rt|dbg)-", n) and not n.endswith("-unsigned")]


def pick_package(version: str, names: list[str]) -> str:
    """The newest plain image package of `version` ("5.10", "6.12") among
    `names`; "newest": of the newest kernel line there is."""
    plain = plain_images(names)
    if version == "newest":
        if not plain:
            raise KernelNotFound("no linux-image package in the kernel archive")
        line = max(line_of(n) for n in plain)
        version = ".".join(map(str, line))
    chosen = [n for n in plain if n.startswith(f"linux-image-{version}.")]
    if not chosen:
        raise KernelNotFound(f"no linux-image package for kernel {version} in Debian's archive (has: "
                             f"{', '.join(sorted({'.'.join(map(str, line_of(n))) for n in plain}, key=version_key))})")
    return max(chosen, key=version_key)


# kernel.org's long-term lines (https://www.kernel.org/category/releases.html):
# `--kernel lts` is those of them Debian's archive offers.
LONGTERM = ("4.19", "5.4", "5.10", "5.15", "6.1", "6.6", "6.12")


def lines(archive: Archive | None = None) -> list[str]:
    """Every kernel line ("6.1") Debian's archive has a plain image of, oldest first."""
    archive = archive or Archive()
    archive.refresh()
    return [".".join(map(str, line)) for line in sorted({line_of(n) for n in plain_images(archive.image_packages())})]


def line_of(package: str) -> tuple[int, int]:
    major, minor = re.match(r"linux-image-(\d+)[.](\d+)", package).groups()
    return int(major), int(minor)


def parse_depends(show: str) -> list[str]:
    """From `apt-cache show`: the packages the image needs for a bootable
    tree. Newer Debian kernels split one image into linux-image (a shell),
    linux-binary (vmlinuz) and linux-modules."""
    m = re.search(r"^Depends: (.*)$", show, re.M)
    names = [re.split(r"[ (]", alt.strip())[0] for alt in m.group(1).split(",")] if m else []
    return [n for n in names if re.match(r"linux-(binary|modules)-\d", n)]


def package_for(version: str, archive: Archive | None = None) -> str:
    archive = archive or Archive()
    archive.refresh()
    return pick_package(version, archive.image_packages())


def images_in(root: Path) -> list[Path]:
    """/boot/vmlinuz-VERSION, or (split packages, 7.x) /usr/lib/modules/VERSION/vmlinuz,
    where virtme-ng finds the modules beside it."""
    if not root.exists():
        return []
    return sorted(root.glob("boot/vmlinuz-*")) or sorted(root.glob("usr/lib/modules/*/vmlinuz"))


def fetch(version: str, archive: Archive | None = None) -> Path:
    """The kernel image of `version` ("5.10", "6.1", "newest"), unpacked
    (with its modules) in the cache."""
    archive = archive or Archive()
    pkg = package_for(version, archive)
    root = CACHE / pkg
    images = images_in(root)
    if images:
        return images[-1]
    root.mkdir(parents=True, exist_ok=True)
    download = CACHE / "downloads"
    download.mkdir(exist_ok=True)
    try:
        for deb in archive.download([pkg, *archive.depends(pkg)], download):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
            deb.unlink()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise KernelNotFound(f"{pkg}: {' '.join(exc.cmd[:3])} failed: {(exc.stderr or b'').decode()[-300:]}") from None
    images = images_in(root)
    if not images:
        shutil.rmtree(root, ignore_errors=True)
        raise KernelNotFound(f"{pkg} holds no kernel image (a meta-package?)")
    return images[-1]
