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
    ("lab/x.py", "from bpflab.loaders.cli import OneLineParser"),
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
