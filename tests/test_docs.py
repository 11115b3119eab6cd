"""The docs and the comments say what is true: every file they name exists,
every link between pages has its target, every environment variable the
code reads is documented, and the README stays a front door (under 200
lines). The docs themselves are built by `nox -s docs` (warnings, broken
links included, are errors)."""
import io
import re
import subprocess
import tokenize
from pathlib import Path

import pytest

from bpflab.host.paths import REPO_ROOT

# Paths of this repository as prose names them (a directory of it, then a path).
REPO_PATH = re.compile(r"(?<![\w/.$<@-])((?:bpf|bpflab|loaders|lab|tests|bench|kernels|docs|examples|scripts|\.github"
                       r"|\.ci)/[\w./-]*\w)(?![\w*{])")
BARE_MD = re.compile(r"(?<![\w/.-])([\w-]+\.md)\b")
MD_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")
# Where the installed package's directories live in the repository.
INSTALLED = {"bpflab/loaders/": "loaders/", "bpflab/lab/": "lab/", "bpflab/bench/": "bench/",
             "bpflab/kernels/": "kernels/"}
PLACEHOLDERS = ("NAME", "KERNEL", "VERSION", "/x.py", "/x/")  # names that stand for any file
OUTPUTS = ("build/", "docs/_build/")  # what a command writes (ignored by git), named before it exists


def tracked() -> list[str]:
    return subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True).stdout.split()


def prose(path: str, text: str) -> list[tuple[int, str]]:
    """(line, text) of what a reader reads: Markdown whole; comments and
    docstrings of Python; comments of C, shell, YAML, the Makefile."""
    if path.endswith(".md"):
        return [(1, text)]
    if path.endswith(".py"):
        out = []
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT or (tok.type == tokenize.STRING and tok.string.lstrip("rbu").startswith(
                    ('"""', "'''"))):
                out.append((tok.start[0], tok.string))
        return out
    if path.endswith((".c", ".h")):
        return [(text[:m.start()].count("\n") + 1, m.group(0)) for m in re.finditer(r"/\*.*?\*/|//[^\n]*", text, re.S)]
    if path.endswith((".sh", ".yml", ".toml")) or path in ("Makefile", ".ci/run"):
        return [(i + 1, line[line.index("#"):]) for i, line in enumerate(text.splitlines()) if "#" in line]
    return []


def named_paths_that_do_not_exist() -> list[str]:
    names = {Path(f).name for f in tracked()}
    missing = []
    for path in tracked():
        if path.startswith(("docs/_build", "tests/verifier_logs")) or not (REPO_ROOT / path).is_file():
            continue
        text = (REPO_ROOT / path).read_text(errors="replace")
        for line, chunk in prose(path, text):
            for m in REPO_PATH.finditer(chunk):
                named = m.group(1).rstrip(".")
                if named.startswith(OUTPUTS) or any(p in named for p in PLACEHOLDERS) or \
                        chunk[:m.start()].endswith("uses: "):  # a GitHub workflow of owner/repo, not a path here
                    continue
                in_repo = next((b + named[len(a):] for a, b in INSTALLED.items() if named.startswith(a)), named)
                if not (REPO_ROOT / in_repo).exists() and not (REPO_ROOT / named).exists():
                    missing.append(f"{path}:{line + chunk[:m.start()].count(chr(10))}: {named}")
            for m in BARE_MD.finditer(chunk):
                if m.group(1) not in names:
                    missing.append(f"{path}:{line + chunk[:m.start()].count(chr(10))}: {m.group(1)}")
    return missing


def test_every_file_the_docs_and_comments_name_exists():
    assert named_paths_that_do_not_exist() == []


def test_the_check_of_named_files_bites(tmp_path, monkeypatch):
    """A comment naming a file that is not there is found (the check above
    cannot pass by finding nothing)."""
    (REPO_ROOT / "lab" / "_named_for_test.py").write_text('"""See lab/patience.py and lab-facts.md."""\n')
    try:
        found = named_paths_that_do_not_exist()
    finally:
        (REPO_ROOT / "lab" / "_named_for_test.py").unlink()
    assert found == ["lab/_named_for_test.py:1: lab/patience.py", "lab/_named_for_test.py:1: lab-facts.md"]


def markdown_files() -> list[Path]:
    return [REPO_ROOT / p for p in tracked() if p.endswith(".md") and not p.startswith("docs/_build")]


def test_every_link_between_pages_has_its_target():
    """Links of the README and CONTRIBUTING.md (which GitHub shows, outside
    the Sphinx build); the docs' own are checked by nox -s docs as well."""
    broken = []
    for md in markdown_files():
        for m in MD_LINK.finditer(md.read_text()):
            target = m.group(1)
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            if not (md.parent / target).exists():
                broken.append(f"{md.relative_to(REPO_ROOT)}: {target}")
    assert broken == []


def test_every_environment_variable_the_code_reads_is_documented():
    code = [p for p in tracked() if p.endswith((".py", ".sh")) and p.startswith(
        ("bpflab/", "loaders/", "lab/", "kernels/", "bench/", "scripts/")) or p in ("conftest.py",)]
    read = {name for path in code for name in re.findall(r"\bBPFLAB_[A-Z_]+\b", (REPO_ROOT / path).read_text())}
    documented = set(re.findall(r"^\| `(BPFLAB_[A-Z_]+)`", (REPO_ROOT / "docs/reference/environment.md").read_text(),
                                re.M))
    assert read - documented == set()
    assert documented - read == set(), "documented but read nowhere"


@pytest.mark.parametrize("page, most", [("README.md", 200)])
def test_the_readme_stays_a_front_door(page, most):
    assert len((REPO_ROOT / page).read_text().splitlines()) <= most
