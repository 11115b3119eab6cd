"""nox sessions.

    nox -s kernel     the whole suite, privileged (what CI runs); extra args go to pytest
    nox -s unit       what runs without root
    nox -s lint       ruff
    nox -s verifier   only the verifier-rejection suite (clang and clang-19)
    nox -s bench      benchmarks (not part of the suite); `-- --suite` also times the suite
    nox -s mutants    break bpf/ on purpose, one rule at a time, and see the suite fail
"""
import tempfile
import zipfile
from pathlib import Path

import nox

from bpflab.host import kernel as host_kernel
from bpflab.kernels.matrix import split_kernels

nox.options.sessions = ["lint", "unit", "kernel"]
nox.options.reuse_existing_virtualenvs = True


def install(session):
    session.install("-e", ".[test]")
    session.run("make", "-s", external=True)


def require_kernel(session):
    """Fail, never skip, when this machine cannot run kernel tests."""
    problems = host_kernel.problems()
    if problems:
        session.error("; ".join(problems))


@nox.session
def kernel(session):
    """The whole suite on the host kernel; with --kernel VERSION (repeatable)
    on those Debian kernels instead, each booted in a VM."""
    require_kernel(session)
    install(session)
    try:
        versions, args = split_kernels(session.posargs)
    except ValueError as exc:
        session.error(str(exc))
    args = args or ["-n", "2"]
    if not versions:
        # Python caches bytecode unless told not to; some CI images tell it
        # not to, and then every process the suite starts compiles the
        # project again (about 5 s of a 50 s run here).
        session.run("pytest", *args, env={"PYTHONDONTWRITEBYTECODE": ""})
        return
    session.install("virtme-ng")
    session.run("python", "-m", "bpflab.kernels.matrix", *[a for v in versions for a in ("--kernel", v)], *args)


@nox.session
def verifier(session):
    require_kernel(session)
    install(session)
    session.run("pytest", "-m", "verifier", *session.posargs)


@nox.session
def unit(session):
    install(session)
    session.run("pytest", "-m", "not kernel", *session.posargs)


@nox.session
def lint(session):
    """ruff, with the layering rule (each layer's ruff.toml bans what lies
    above it), and the wheel: it must install nothing but the bpflab package."""
    session.install("ruff")
    session.run("ruff", "check", "bpflab", "loaders", "lab", "tests", "bench", "kernels", "examples", "noxfile.py",
                "conftest.py")
    with tempfile.TemporaryDirectory() as wheels:
        session.run("python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ".")
        (wheel,) = Path(wheels).glob("bpflab-*.whl")
        top = sorted({name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()})
        if top != ["bpflab", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"]:
            session.error(f"the wheel installs more than the bpflab package: {top}")
        session.log(f"{wheel.name} installs only: {', '.join(top)}")


@nox.session
def mutants(session):
    """Mutation testing of bpf/ and examples/ (tests/mutants.py): -- -k ID, -- --list."""
    require_kernel(session)
    install(session)
    session.run("python", "-m", "tests.mutants", *session.posargs)


@nox.session
def bench(session):
    require_kernel(session)
    install(session)
    session.run("python", "-m", "bpflab.bench", *session.posargs)
