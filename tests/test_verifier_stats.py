"""`bpflab verifier stats`: veristat's numbers for every program of anyone's
objects (measured against veristat itself and bpftool), a baseline to
compare with (a doubled loop, a program that stopped loading), other
kernels, and one clear line for what cannot be used."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bpflab.host import kernel
from bpflab.loaders.objects import BUILD_DIR
from bpflab.tool.cli import main
from tests import veristat

pytestmark = pytest.mark.kernel

TESTS = BUILD_DIR / "tests"
MIXED = [BUILD_DIR / "xdp_dnat.bpf.o", BUILD_DIR / "examples" / "xdp_pong.bpf.o", TESTS / "stats_loop16.bpf.o",
         TESTS / "stats_bpf_loop.bpf.o", TESTS / "stats_subprog.bpf.o", BUILD_DIR / "verifier" / "map_null_check.bpf.o"]
# veristat's stack_depth of MIXED on 7.2, measured again whenever one of
# them changes: `bpflab kernels --kernel 7.2 -- sh -c "PYTHONPATH=$PWD python
# -c 'from tests import veristat; from tests.test_verifier_stats import MIXED;
# print(veristat.run(MIXED))'"`.
STACKS_ON_7_2 = {("xdp_dnat.bpf.o", "xdp_dnat"): 160, ("xdp_dnat.bpf.o", "dnat_return"): 96,
                 ("xdp_pong.bpf.o", "xdp_pong"): 32, ("stats_loop16.bpf.o", "stats_loop"): 0,
                 ("stats_bpf_loop.bpf.o", "stats_bpf_loop"): 32, ("stats_subprog.bpf.o", "stats_subprog"): 48,
                 ("map_null_check.bpf.o", "no_null_check"): 8, ("map_null_check.bpf.o", "null_checked"): 8}
VERISTAT_STATS = ("verdict", "insns", "total_states", "peak_states", "max_states_per_insn", "mark_read",
                  "stack_depth")
JSON_KEYS = ["object", "program", "verdict", "insns", "total_states", "peak_states", "max_states_per_insn",
             "mark_read", "stack_depth", "verification_us", "xlated_insns", "jited_bytes", "verified_insns", "log"]


def stats(capsys, *args) -> tuple[int, str, str]:
    """The command line, in this process: its exit status, stdout, stderr."""
    try:
        code = main(["verifier", "stats", *map(str, args)])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def report(capsys, *objects) -> dict:
    code, out, err = stats(capsys, *objects, "--json")
    assert code == 0, err
    return json.loads(out)


def test_every_program_has_veristats_numbers(capsys):
    """veristat (the kernel's tool, run here from Debian's package) on the
    same objects and kernel: the same verdicts and the same counts, for a
    rejected program too."""
    got = report(capsys, *MIXED)
    assert got["kernel"] == os.uname().release
    ours = {(p["object"], p["program"]): {k: p[k] for k in VERISTAT_STATS} for p in got["programs"]}
    theirs = {(p["object"], p["program"]): {k: p[k] for k in VERISTAT_STATS} for p in veristat.run(MIXED)}
    if kernel.version() >= (7, 3):
        # 7.3 writes the stack as "stack depth max N" and a line per
        # subprogram: veristat (0.4, and 0.5.1 likewise, measured) reads 0
        # there. The stacks are those veristat read on 7.2, the last kernel
        # it can read, where each subprogram's figure is the same.
        assert {k: v["stack_depth"] for k, v in ours.items()} == STACKS_ON_7_2
        for stats in (*ours.values(), *theirs.values()):
            del stats["stack_depth"]
    assert ours == theirs
    assert ours[("map_null_check.bpf.o", "no_null_check")]["verdict"] == "rejected"
    # bpf_prog_info's verified_insns (5.16+) is the verifier's count again.
    for p in got["programs"]:
        assert p["verified_insns"] == (p["insns"] if p["verdict"] == "loaded" and kernel.version() >= (5, 16)
                                       else None)
    assert [list(p) for p in got["programs"]] == [JSON_KEYS] * len(got["programs"])


def test_sizes_are_what_bpftool_shows_of_the_loaded_program(capsys, tmp_path):
    """bpf_prog_info's numbers, read by bpftool from the same programs
    loaded by bpftool: the translated and JIT-ed sizes."""
    objects = (BUILD_DIR / "xdp_dnat.bpf.o", TESTS / "stats_subprog.bpf.o")  # both load on every kernel
    got = {p["program"]: p for p in report(capsys, *objects)["programs"]}
    pins = Path("/sys/fs/bpf") / f"bpflab-test-stats-{tmp_path.name}"
    pins.mkdir()
    try:
        shown = {}
        for obj in objects:
            subprocess.run(["bpftool", "prog", "loadall", str(obj), str(pins / obj.name.split(".")[0])], check=True,
                           capture_output=True, timeout=60)
            for pin in sorted((pins / obj.name.split(".")[0]).iterdir()):
                info = json.loads(subprocess.run(["bpftool", "--json", "prog", "show", "pinned", str(pin)],
                                                 check=True, capture_output=True, text=True, timeout=60).stdout)
                shown[info["name"]] = info
    finally:
        shutil.rmtree(pins, ignore_errors=True)  # unpinned: the programs go with the last reference
    for name, info in shown.items():
        name = next(n for n in got if n.startswith(name))  # the kernel keeps 15 characters of a name
        assert got[name]["xlated_insns"] * 8 == info["bytes_xlated"]
        assert got[name]["jited_bytes"] == info["bytes_jited"]
    assert set(shown) == {"xdp_dnat", "dnat_return", "stats_subprog"}


def loop_builds(tmp_path, *bounds) -> list[Path]:
    """stats_loopN.bpf.o of each bound, copied to DIR/stats_loop.bpf.o: one
    object name, its loop changed between builds."""
    out = []
    for bound in bounds:
        (tmp_path / str(bound)).mkdir()
        out.append(Path(shutil.copy(TESTS / f"stats_loop{bound}.bpf.o", tmp_path / str(bound) / "stats_loop.bpf.o")))
    return out


def test_a_loop_that_doubled_is_a_regression_named_with_its_numbers(capsys, tmp_path):
    """The bound of a loop from 16 to 32: the instructions processed grow
    by one iteration's worth per iteration (veristat's counts of three
    bounds say how many), far beyond 10 %: exit 1, the row and the numbers
    named. The same growth allowed: exit 0."""
    loop8, loop16, loop32 = loop_builds(tmp_path, 8, 16, 32)
    counts = {}
    for bound, obj in ((8, loop8), (16, loop16), (32, loop32)):
        (counts[bound],) = veristat.run([obj])
    per_iteration = (counts[16]["insns"] - counts[8]["insns"]) // 8
    assert counts[32]["insns"] - counts[16]["insns"] == 16 * per_iteration > 0  # one walk per iteration
    code, _, err = stats(capsys, loop16, "--output", tmp_path / "base.json")
    assert code == 0, err
    code, out, err = stats(capsys, loop32, "--baseline", tmp_path / "base.json")
    assert code == 1, err
    grown = []
    for stat in ("insns", "peak_states"):
        old, new = counts[16][stat], counts[32][stat]
        pct = 100 * (new - old) / old
        if pct > 10:
            grown.append(stat)
            assert f"GREW beyond 10%: stats_loop.bpf.o/stats_loop {stat} {old} -> {new} (+{pct:.1f}%)" in out
    assert "insns" in grown
    old, new = counts[16]["insns"], counts[32]["insns"]
    pct = 100 * (new - old) / old
    row = next(line for line in out.splitlines() if line.startswith("stats_loop.bpf.o"))
    assert f"{old:>7} {new:>7} {new - old:>+6} {f'+{pct:.1f}%':>7}" in row
    assert row.endswith(f"GREW: {', '.join(grown)}")
    assert out.splitlines()[-1] == f"REGRESSED: 0 rejected now, {len(grown)} grown beyond 10%"
    allowed = max(100 * (counts[32][s] - counts[16][s]) / counts[16][s] for s in grown)
    code, out, _ = stats(capsys, loop32, "--baseline", tmp_path / "base.json", "--max-growth", f"{allowed + 0.1:.1f}")
    assert code == 0 and out.splitlines()[-1] == "as the baseline allows"


def test_the_same_objects_on_the_same_kernel_are_as_the_baseline_allows(capsys, tmp_path):
    code, _, err = stats(capsys, *MIXED, "--output", tmp_path / "base.json")
    assert code == 0, err
    code, out, err = stats(capsys, *MIXED, "--baseline", tmp_path / "base.json", "--max-growth", "0")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "as the baseline allows"
    code, out, _ = stats(capsys, *MIXED, "--baseline", tmp_path / "base.json", "--json")
    assert code == 0 and json.loads(out)["comparison"]["ok"] is True


def test_a_program_that_stopped_loading_fails_with_the_verifiers_lines(capsys, tmp_path):
    """A baseline in which the corpus's no_bounds_check loaded: now it is
    rejected, and the report shows the verifier's own message (the one the
    corpus annotates it with). Added and gone programs are listed, not
    failures."""
    obj = BUILD_DIR / "verifier" / "packet_bounds.bpf.o"
    base = report(capsys, obj)
    for p in base["programs"]:
        if p["program"] == "no_bounds_check":
            p.update(verdict="loaded", log=[], insns=10)
    base["programs"].append({**base["programs"][0], "program": "retired"})
    (tmp_path / "base.json").write_text(json.dumps(base))
    shutil.copy(BUILD_DIR / "hello.bpf.o", tmp_path / "hello.bpf.o")
    code, out, err = stats(capsys, obj, tmp_path / "hello.bpf.o", "--baseline", tmp_path / "base.json")
    assert code == 1, err
    lines = out.splitlines()
    at = lines.index(f"REJECTED NOW (loaded in the baseline): packet_bounds.bpf.o/no_bounds_check, kernel "
                     f"{os.uname().release}:")
    assert any("invalid access to packet" in line for line in lines[at + 1:at + 4])
    assert "added (not in the baseline): hello.bpf.o/hello (loaded)" in lines
    assert "gone (in the baseline, not now): packet_bounds.bpf.o/retired" in lines
    assert lines[-1] == "REGRESSED: 1 rejected now, 0 grown beyond 10%"


OLD_KERNELS_ON_BPF_LOOP = r"number of funcs in func_info doesn't match number of subprogs|invalid func unknown#181"


def test_a_helper_older_kernels_lack_loads_only_since_it_came(capsys):
    """bpf_loop came with 5.17: loaded from then on, rejected before, in
    the verifier's words: 5.10 knows no callbacks (the one bpf_loop takes
    is a subprogram it cannot place), 5.13 to 5.16 no helper 181."""
    (p,) = report(capsys, TESTS / "stats_bpf_loop.bpf.o")["programs"]
    if kernel.version() >= (5, 17):
        assert (p["verdict"], p["log"]) == ("loaded", [])
    else:
        assert p["verdict"] == "rejected"
        assert any(re.search(OLD_KERNELS_ON_BPF_LOOP, line) for line in p["log"]), p["log"]


def test_the_table_and_the_csv(capsys):
    code, out, _ = stats(capsys, TESTS / "stats_loop8.bpf.o", BUILD_DIR / "verifier" / "map_null_check.bpf.o")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"kernel {os.uname().release}:"
    assert lines[1].split() == ["object", "program", "verdict", "insns", "states", "peak", "stack", "us", "xlated",
                                "jited"]
    assert [line.split()[:3] for line in lines[2:] if not line.lstrip().startswith("|")] == [
        ["stats_loop8.bpf.o", "stats_loop", "loaded"], ["map_null_check.bpf.o", "no_null_check", "rejected"],
        ["map_null_check.bpf.o", "null_checked", "loaded"]]
    assert "| R0 invalid mem access 'map_value_or_null'" in out
    code, out, _ = stats(capsys, TESTS / "stats_loop8.bpf.o", "--csv")
    header, row = out.splitlines()
    assert header == ",".join(k for k in JSON_KEYS if k != "log")
    (theirs,) = veristat.run([TESTS / "stats_loop8.bpf.o"])
    assert row.split(",")[:4] == ["stats_loop8.bpf.o", "stats_loop", "loaded", str(theirs["insns"])]


def not_bpf(tmp_path: Path) -> Path:
    (tmp_path / "notes.bpf.o").write_text("not an object\n")
    return tmp_path / "notes.bpf.o"


def host_object(tmp_path: Path) -> Path:
    (tmp_path / "host.c").write_text("int f(void) { return 1; }\n")
    subprocess.run(["gcc", "-c", str(tmp_path / "host.c"), "-o", str(tmp_path / "host.o")], check=True)
    return tmp_path / "host.o"


def baseline_file(tmp_path: Path, text: str) -> Path:
    (tmp_path / "base.json").write_text(text)
    return tmp_path / "base.json"


@pytest.mark.parametrize("args, message", [
    (lambda t: [not_bpf(t)], "{t}/notes.bpf.o: not a BPF object (cannot open BPF object {t}/notes.bpf.o: elf: "
                             "'{t}/notes.bpf.o' is not a proper ELF object)"),
    (lambda t: [host_object(t)], "{t}/host.o: not a BPF object (cannot open BPF object {t}/host.o: elf: "
                                 "{t}/host.o is not a valid eBPF object file)"),
    (lambda t: [TESTS / "stats_no_programs.bpf.o"], f"{TESTS}/stats_no_programs.bpf.o: a BPF object with no "
                                                    f"programs in it"),
    (lambda t: [t / "absent.bpf.o"], "{t}/absent.bpf.o: no such file"),
    # The bad object is found before the good one is loaded.
    (lambda t: [BUILD_DIR / "hello.bpf.o", not_bpf(t)], "{t}/notes.bpf.o: not a BPF object"),
    (lambda t: [BUILD_DIR / "hello.bpf.o", "--baseline", baseline_file(t, "[1, 2]")],
     "--baseline {t}/base.json: not a report of bpflab verifier stats --json"),
    (lambda t: [BUILD_DIR / "hello.bpf.o", "--baseline", baseline_file(t, "{")], "--baseline {t}/base.json: not JSON"),
    (lambda t: [BUILD_DIR / "hello.bpf.o", "--baseline", t / "none.json"], "--baseline {t}/none.json: no such file"),
    (lambda t: [BUILD_DIR / "hello.bpf.o", "--max-growth", "-5"], "--max-growth -5: a percentage, 0 or more"),
    (lambda t: [BUILD_DIR / "hello.bpf.o", "-j", "2"], "-j and --out go with --kernel"),
    (lambda t: [BUILD_DIR / "hello.bpf.o", "--kernel", "4.x"], "--kernel 4.x: not a kernel line"),
    (lambda t: [BUILD_DIR / "hello.bpf.o", "--json", "--csv"], "argument --csv: not allowed with argument --json"),
    (lambda t: [BUILD_DIR / "hello.bpf.o", "--output", t / "none" / "base.json"],
     "argument --output: cannot write {t}/none/base.json: no directory {t}/none"),
])
@pytest.mark.harness  # the plumbing: the same on every kernel
def test_unusable_input_is_one_line_and_exit_2(capsys, tmp_path, args, message):
    code, out, err = stats(capsys, *args(tmp_path))
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert message.format(t=tmp_path) in line
    assert line.startswith("bpflab verifier stats: error: ")


# -- other kernels -------------------------------------------------------------------------------------------------

OLD_RELEASE = "5.10.0-46-amd64"
OLD_REJECTION = ["number of funcs in func_info doesn't match number of subprogs"]


@pytest.fixture
def old_kernel_vm(tmp_path, monkeypatch):
    """A "5.10" whose VM is a script: it prints what a guest of the kernel
    engine prints, with statistics of its own (the hello program loaded,
    stats_bpf_loop rejected as 5.10 rejects it) as the collected file.
    This machine's kernel runs for real next to it (--kernel 5.10,host)."""
    import base64

    from bpflab.kernels import cli as kernels_cli
    from bpflab.kernels import matrix
    from tests.kernelfakes import fake_vng

    guest = {"kernel": OLD_RELEASE, "programs": [
        {"object": "hello.bpf.o", "program": "hello", "verdict": "loaded", "insns": 9, "total_states": 0,
         "peak_states": 0, "max_states_per_insn": 0, "mark_read": 0, "stack_depth": 0, "verification_us": 4000,
         "xlated_insns": 12, "jited_bytes": 63, "verified_insns": None, "log": []},
        {"object": "stats_bpf_loop.bpf.o", "program": "stats_bpf_loop", "verdict": "rejected", "insns": 5,
         "log": OLD_REJECTION}]}
    collected = base64.b64encode(json.dumps(guest).encode()).decode()
    fake_vng(tmp_path, monkeypatch, [f"bpflab-uname={OLD_RELEASE}", "a table the guest printed", "bpflab-exit=0",
                                     f"bpflab-collect={collected}"])
    monkeypatch.setattr(matrix, "fetch", lambda version, archive: Path(f"/boot/vmlinuz-{OLD_RELEASE}"))
    monkeypatch.setattr(kernels_cli, "machine_problems", lambda vms: [])
    monkeypatch.setattr(kernels_cli, "archive_lines", lambda: lambda: ["5.10", "6.1"])
    return guest


ACROSS = [BUILD_DIR / "hello.bpf.o", TESTS / "stats_bpf_loop.bpf.o"]


@pytest.mark.harness  # the plumbing: the same on every kernel
def test_other_kernels_make_one_table_program_by_kernel(capsys, tmp_path, old_kernel_vm):
    """Each kernel's statistics come back from its VM; the table has a
    column per kernel (instructions processed, or "rejected"), and the older
    kernel's verifier lines under it."""
    code, out, err = stats(capsys, *ACROSS, "--kernel", "5.10,host", "--out", tmp_path / "out")
    assert code == 0, err
    here = {p["program"]: p for p in veristat.run(ACROSS)}
    table = out[out.index("instructions processed by each kernel's verifier"):].splitlines()
    assert table[1].split() == ["object", "program", "5.10", "host"]
    assert table[2].split() == ["hello.bpf.o", "hello", "9", str(here["hello"]["insns"])]
    assert table[3].split() == ["stats_bpf_loop.bpf.o", "stats_bpf_loop", "rejected",
                                str(here["stats_bpf_loop"]["insns"])]
    assert table[4] == f"kernels: 5.10 {OLD_RELEASE}, host {os.uname().release}"
    assert table[5:] == [f"stats_bpf_loop.bpf.o/stats_bpf_loop rejected by 5.10 ({OLD_RELEASE}):",
                         *(f"  | {line}" for line in OLD_REJECTION)]
    assert "[kernel 5.10] a table the guest printed" in out  # the engine's progress, on stdout for people
    code, out, err = stats(capsys, *ACROSS, "--kernel", "5.10,host", "--out", tmp_path / "out", "--json")
    assert code == 0
    got = json.loads(out)  # only the report on stdout; the progress went to stderr
    assert "[kernel 5.10] a table the guest printed" in err
    assert [(k["version"], k["kernel"]) for k in got["kernels"]] == [("5.10", OLD_RELEASE),
                                                                       ("host", os.uname().release)]
    assert got["kernels"][0]["programs"][1]["log"] == OLD_REJECTION
    assert [(p["program"], p["insns"]) for p in got["kernels"][1]["programs"]] == [
        (name, here[name]["insns"]) for name in ("hello", "stats_bpf_loop")]


@pytest.mark.harness  # the plumbing: the same on every kernel
def test_a_baseline_across_kernels_is_compared_kernel_by_kernel(capsys, tmp_path, old_kernel_vm):
    """A baseline of both kernels in which this machine's hello took fewer
    instructions: this machine's line regressed, 5.10's did not."""
    code, out, _ = stats(capsys, *ACROSS, "--kernel", "5.10,host", "--out", tmp_path / "out", "--json")
    base = json.loads(out)
    hello = base["kernels"][1]["programs"][0]
    hello["insns"] = hello["insns"] // 2
    (tmp_path / "base.json").write_text(json.dumps(base))
    code, out, err = stats(capsys, *ACROSS, "--kernel", "5.10,host", "--out", tmp_path / "out",
                           "--baseline", tmp_path / "base.json")
    assert code == 1, err
    tables = out.split("\n\n")
    assert tables[1].splitlines()[0] == f"against the baseline, kernel {OLD_RELEASE}, growth allowed 10%:"
    assert tables[1].splitlines()[-1] == "as the baseline allows"
    assert tables[2].splitlines()[0] == f"against the baseline, kernel {os.uname().release}, growth allowed 10%:"
    assert tables[2].splitlines()[-1] == "REGRESSED: 0 rejected now, 1 grown beyond 10%"


@pytest.mark.harness  # the plumbing: the same on every kernel
def test_a_kernel_that_gave_no_statistics_is_a_failure_that_says_why(capsys, tmp_path, monkeypatch, old_kernel_vm):
    from tests.kernelfakes import fake_vng

    fake_vng(tmp_path, monkeypatch, [f"bpflab-uname={OLD_RELEASE}", "Traceback: it broke", "bpflab-exit=1"])
    code, out, _ = stats(capsys, *ACROSS, "--kernel", "5.10", "--out", tmp_path / "out")
    assert code == 1
    assert out.splitlines()[-1] == "5.10: no statistics: the statistics command exited 1"


@pytest.mark.harness  # the plumbing: the same on every kernel
def test_a_baseline_of_other_kernel_lines_is_refused(capsys, tmp_path, old_kernel_vm):
    (tmp_path / "base.json").write_text(json.dumps({"kernels": [{"version": "6.1", "kernel": "6.1.0-41-amd64",
                                                                 "programs": []}]}))
    code, out, err = stats(capsys, *ACROSS, "--kernel", "5.10", "--out", tmp_path / "out", "--baseline",
                           tmp_path / "base.json")
    assert (code, out) == (2, "")
    assert err.strip() == (f"bpflab verifier stats: error: --baseline {tmp_path}/base.json: it holds no kernel of "
                           f"the lines this run had (5.10; it has 6.1)")


def test_a_bpf_object_libbpf_cannot_open_is_a_rejected_row(capsys):
    """The corpus's libc_call calls rand(), an extern no kernel resolves:
    libbpf refuses the object before any program reaches the verifier. A
    verdict (its programs do not load), not unusable input."""
    (row,) = report(capsys, BUILD_DIR / "verifier" / "libc_call.bpf.o")["programs"]
    assert (row["object"], row["program"], row["verdict"], row["insns"]) == ("libc_call.bpf.o", "(object)",
                                                                           "rejected", None)
    assert row["log"] == ["libbpf cannot open it: failed to find BTF for extern 'rand' [11] section: -2"]
