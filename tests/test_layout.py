"""The layering rule (README: Layout) is enforced, not hoped for: each
layer's ruff.toml bans imports from the layers above it, and nothing may
import the repository's folders under their generic top-level names."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpflab.host.paths import REPO_ROOT

# (a file in this layer, an import it must not make)
FORBIDDEN = [
    ("bpflab/libbpf/x.py", "from bpflab.host import netns"),
    ("bpflab/libbpf/x.py", "import pyroute2"),
    ("bpflab/host/x.py", "from bpflab.loaders import cli"),
    ("bpflab/host/x.py", "import bpflab.lab.builder"),
    ("loaders/x.py", "from bpflab.lab import topology"),
    ("loaders/x.py", "from scapy.layers.l2 import Ether"),
    ("lab/x.py", "from tests import model"),
    ("lab/x.py", "from bpflab.bench import testrun"),
    ("tests/x.py", "from lab import builder"),
    ("bench/x.py", "import loaders.cli"),
    ("examples/x/test_x.py", "from bpflab.lab.packets import rewrite"),
    ("examples/x/test_x.py", "from bpflab.libbpf.btf_codec import fill_map"),
]
ALLOWED = [
    ("bpflab/host/x.py", "from bpflab.libbpf import BpfObject"),
    ("loaders/x.py", "from bpflab.host.netns import entered"),
    ("lab/x.py", "from bpflab.host.commandline import OneLineParser"),
    ("tests/x.py", "from bpflab.lab import builder"),
    ("examples/x/test_x.py", "from bpflab.testing import Target, fill_map"),
]


def ruff():
    found = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("ruff is not installed in this environment (pip install -e '.[test]')")
    return found


def lint(path: str, source: str) -> str:
    result = subprocess.run([ruff(), "check", "--no-cache", "--select", "TID", "--stdin-filename", path, "-"],
                            input=source + "\n", cwd=REPO_ROOT, capture_output=True, text=True)
    return result.stdout


@pytest.mark.parametrize("path,source", FORBIDDEN, ids=[f"{p.rsplit('/', 1)[0]}: {s}" for p, s in FORBIDDEN])
def test_an_import_from_above_is_refused(path, source):
    assert "TID251" in lint(path, source)


@pytest.mark.parametrize("path,source", ALLOWED, ids=[f"{p.rsplit('/', 1)[0]}: {s}" for p, s in ALLOWED])
def test_an_import_from_below_is_fine(path, source):
    assert "TID251" not in lint(path, source)


def test_reaching_into_another_objects_private_names_is_refused():
    """One contract per layer: what a module keeps private stays so (ruff's
    SLF rule, on in pyproject.toml for everything nox -s lint checks)."""
    found = subprocess.run([ruff(), "check", "--no-cache", "--stdin-filename", "tests/x.py", "-"],
                           input="from bpflab.lab import builder\n\nbuilder.LAB._wait()\n", cwd=REPO_ROOT,
                           capture_output=True, text=True).stdout
    assert "SLF001" in found


PACKAGE_DIRS = ("bpflab", "loaders", "lab", "bench", "kernels")


def package_files() -> list[Path]:
    return [path for directory in PACKAGE_DIRS for path in sorted((REPO_ROOT / directory).rglob("*.py"))]


def public_classes(files: list[Path]) -> dict[str, list[str]]:
    import ast

    where: dict[str, list[str]] = {}
    for path in files:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(path.name if not path.is_relative_to(REPO_ROOT)
                                                       else str(path.relative_to(REPO_ROOT)))
    return where


def test_no_two_modules_of_the_package_define_a_public_class_of_the_same_name():
    twice = {name: paths for name, paths in public_classes(package_files()).items() if len(paths) > 1}
    assert twice == {}, "one meaning per name: " + "; ".join(f"{n} in {', '.join(p)}" for n, p in twice.items())


def test_the_name_check_sees_a_twin(tmp_path):
    """The check above bites: a second Backend (loaders/services.py has one)."""
    (tmp_path / "twin.py").write_text("class Backend:\n    pass\n")
    assert public_classes([*package_files(), tmp_path / "twin.py"])["Backend"] == ["loaders/services.py", "twin.py"]


def attachment_classes() -> list[type]:
    import importlib

    from bpflab.libbpf import Attachment

    for module in ("bpflab.libbpf.xdp", "bpflab.libbpf.tc", "bpflab.loaders.interfaces", "bpflab.loaders.base",
                   "bpflab.loaders.any_program", "bpflab.loaders.xdp_dnat", "bpflab.loaders.hello"):
        importlib.import_module(module)
    out, todo = [], [Attachment]
    while todo:
        for sub in todo.pop().__subclasses__():
            out.append(sub)
            todo.append(sub)
    return out


def test_every_way_of_attaching_has_one_protocol():
    """close() (never detach() or teardown()), a with block: Attachment's."""
    classes = attachment_classes()
    assert {c.__name__ for c in classes} >= {"XdpLink", "TcAttachment", "XdpOnInterface", "TcOnInterface", "Loader",
                                             "XdpDnat", "AnyProgram", "Hello"}
    for cls in classes:
        assert "close" in {n for c in cls.__mro__ if c is not object for n in vars(c)}, cls
        assert not hasattr(cls, "detach") and not hasattr(cls, "teardown"), cls
