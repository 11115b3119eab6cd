"""The program registry: every program bpflab ships is in it once, with a
loader of the same name, an object the Makefile builds and a command line."""
import json
import subprocess
import sys

from bpflab.host.paths import REPO_ROOT
from bpflab.loaders.base import Loader
from bpflab.loaders.objects import object_path
from bpflab.loaders.registry import PROGRAMS


def test_every_program_of_bpf_is_registered_with_its_loader():
    sources = sorted(p.name.removesuffix(".bpf.c") for p in (REPO_ROOT / "bpf").glob("*.bpf.c"))
    assert sorted(PROGRAMS) == sources
    for name, program in PROGRAMS.items():
        assert issubclass(program.loader, Loader) and program.loader.name == name
        assert object_path(name).is_file(), f"make {name}"


def test_the_loaders_command_lists_them():
    result = subprocess.run([sys.executable, "-m", "bpflab.loaders", "--json"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list(PROGRAMS)
    assert rows[-1]["summary"] == "Rewrite traffic to service VIPs towards their backends."
    assert rows[0]["command"].startswith("python -m bpflab.loaders.hello IFACE")
