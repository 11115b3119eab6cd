"""The Makefile: every program builds with BTF, a second make does nothing,
one program builds alone, and another clang works too."""
import shutil
import subprocess

from bpflab.host.paths import REPO_ROOT

PROGRAMS = sorted(p.name.removesuffix(".bpf.c") for p in (REPO_ROOT / "bpf").glob("*.bpf.c"))


def make(*args, build_dir, clang="clang"):
    return subprocess.run(["make", f"BUILD={build_dir}", f"CLANG={clang}", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True)


def sections(obj) -> set[str]:
    out = subprocess.run(["llvm-objdump", "-h", str(obj)], capture_output=True, text=True, check=True).stdout
    return {line.split()[1] for line in out.splitlines() if line.strip()[:1].isdigit()}


def test_every_program_builds_with_btf_and_a_second_make_does_nothing(tmp_path):
    """The programs (what `make` builds besides them, the suite's own
    objects, builds in every run of the suite already)."""
    first = make(*PROGRAMS, build_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    for name in PROGRAMS:
        obj = tmp_path / f"{name}.bpf.o"
        assert {".BTF", ".BTF.ext"} <= sections(obj), name
    second = make(*PROGRAMS, build_dir=tmp_path)
    assert second.returncode == 0
    assert "Nothing to be done" in second.stdout and "clang" not in second.stdout


def test_make_name_builds_one_program_and_clean_removes_everything(tmp_path):
    result = make("hello", build_dir=tmp_path / "b")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["hello.bpf.o"]
    assert make("clean", build_dir=tmp_path / "b").returncode == 0
    assert not (tmp_path / "b").exists()


def test_warnings_are_errors(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "warns.bpf.c").write_text("int f(void) { int unused; return 0; }\n")
    result = make("warns", f"SRC={src}", build_dir=tmp_path / "out")
    assert result.returncode != 0
    assert "error: unused variable 'unused' [-Werror" in result.stderr


def test_clang_19_builds_every_program(tmp_path):
    """The programs, not the rest of `make all`: the verifier corpus is
    built by clang-19 in every build already (build/verifier-clang-19)."""
    assert shutil.which("clang-19"), "clang-19 is missing: the setup script installs it"
    result = make(*PROGRAMS, build_dir=tmp_path, clang="clang-19")
    assert result.returncode == 0, result.stderr
    assert {f"{n}.bpf.o" for n in PROGRAMS} <= {p.name for p in tmp_path.iterdir()}
    for name in PROGRAMS:  # by clang-19, as its DWARF says
        assert b"clang version 19." in (tmp_path / f"{name}.bpf.o").read_bytes(), name


def test_plain_make_needs_only_the_default_clang(tmp_path):
    """Without the second compiler, make builds everything else and leaves
    the second compiler's corpus out (the suite builds it where it is)."""
    planned = make("-n", build_dir=tmp_path, clang="clang").stdout
    assert "verifier-clang-19" in planned  # installed here: planned
    missing = subprocess.run(["make", "-n", f"BUILD={tmp_path}", "VERIFIER_CLANG_19=clang-not-installed"],
                             cwd=REPO_ROOT, capture_output=True, text=True)
    assert missing.returncode == 0, missing.stderr
    assert "clang-not-installed" not in missing.stdout and "verifier-clang-19" not in missing.stdout
    assert f"{tmp_path}/hello.bpf.o" in missing.stdout


def test_results_are_kept_outside_what_make_clean_removes():
    from bpflab.bench.__main__ import RESULTS

    assert '["--out", "docs/results/kernel-matrix"]' in (REPO_ROOT / "noxfile.py").read_text()  # nox -s kernel's
    assert RESULTS == REPO_ROOT / "docs" / "results" / "bench.json"
    clean = subprocess.run(["make", "-n", "clean"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert clean.strip() == "rm -rf build"
