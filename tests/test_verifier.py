"""The verifier still rejects what it must, with the expected messages, and
accepts each corrected twin; with clang 14 and clang 19 alike."""
import re
import subprocess
from pathlib import Path

import pytest

from bpflab.host.paths import REPO_ROOT
from bpflab.loaders.objects import BUILD_DIR
from bpflab.tool.verifier import cases_in, match, problems_in
from tests.bpfsrc import unchecked_read_message

pytestmark = [pytest.mark.kernel, pytest.mark.verifier]
SOURCES = sorted((REPO_ROOT / "bpf" / "verifier").glob("*.bpf.c"))
COMPILERS = ["clang", "clang-19"]


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """bpf/verifier built by each compiler: make's own build/verifier and
    build/verifier-clang-19 when they are up to date (in a VM of the kernel
    matrix the host built them: clang under emulation took a minute per
    compiler), else a fresh build in a temporary directory."""
    out = {}
    for clang, made in (("clang", BUILD_DIR / "verifier"), ("clang-19", BUILD_DIR / "verifier-clang-19")):
        objects = [str(made / src.name.replace(".bpf.c", ".bpf.o")) for src in SOURCES]
        if subprocess.run(["make", "-q", f"BUILD={BUILD_DIR}", *objects], cwd=REPO_ROOT,
                          capture_output=True).returncode == 0:
            out[clang] = made
            continue
        build = tmp_path_factory.mktemp(f"verifier-{clang}")
        subprocess.run(["make", "-s", f"SRC={REPO_ROOT / 'bpf' / 'verifier'}", f"BUILD={build}", f"CLANG={clang}"]
                       + [p.name.removesuffix(".bpf.c") for p in SOURCES], cwd=REPO_ROOT, check=True)
        out[clang] = build
    return out


def all_cases(build: Path):
    return [case for src in SOURCES for case in cases_in(build / src.name.replace(".bpf.c", ".bpf.o"))]


def case_ids():
    # One test per (compiler, source file), named before anything is built.
    return [(clang, src.name.removesuffix(".bpf.c")) for clang in COMPILERS for src in SOURCES]


@pytest.mark.parametrize("clang,source", case_ids(), ids=[f"{c}-{s}" for c, s in case_ids()])
def test_case(built, clang, source):
    problems = problems_in(built[clang] / f"{source}.bpf.o")
    assert not problems, "\n\n".join(problems)


def test_every_wrong_case_has_a_twin_and_expectations(built):
    cases = all_cases(built["clang"])
    by_file = {}
    for case in cases:
        by_file.setdefault(case.obj.name.removesuffix(".bpf.o"), []).append(case)
    for name, file_cases in by_file.items():
        failures = [c for c in file_cases if c.outcome == "failure"]
        twins = [c for c in file_cases + by_file.get(f"{name}_twin", []) if c.outcome == "success"]
        if failures:
            assert twins, f"{name}: wrong cases without a corrected twin"
            assert all(c.expects for c in failures), f"{name}: a __failure without any __msg/__regex"
    rules = {c.obj.name.removesuffix(".bpf.o") for c in cases if c.outcome == "failure"}
    assert rules >= {"packet_bounds", "variable_offset", "map_null_check", "packet_map_key", "uninit_read",
                     "ringbuf_commit", "helper_not_allowed", "libc_call"}


def test_a_broken_twin_fails_with_the_whole_log(tmp_path, capsys):
    """Remove the twin's bounds check: `bpflab verifier DIR`, as anyone runs
    it on a corpus of their own, must say so, readably, and exit 1."""
    src = (REPO_ROOT / "bpf" / "verifier" / "packet_bounds.bpf.c").read_text()
    # The twin's check now covers zero bytes of the header.
    broken = src.replace("if ((void *)(eth + 1) > data_end)", "if ((void *)eth > data_end)")
    assert broken != src
    (tmp_path / "broken.bpf.c").write_text(broken)
    from bpflab.tool.cli import main  # the console script's entry, in this process

    capsys.readouterr()
    code = main(["verifier", str(tmp_path)])
    result = subprocess.CompletedProcess(["bpflab"], code, *capsys.readouterr())
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["broken/no_bounds_check", "failure", "as", "annotated"]
    assert lines[1].split() == ["broken/bounds_checked", "success", "NOT", "as", "annotated"]
    assert "broken/bounds_checked must load but was rejected:" in result.stdout
    assert re.search(unchecked_read_message(), result.stdout)
    assert "processed " in result.stdout  # the whole log, up to the verifier's statistics
    assert lines[-1].startswith("2 programs, 1 as annotated, 1 not (clang, kernel ")


RETVAL_CORPUS = """
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpflab/annotations.h>

static __always_inline int drop_ipv4(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_DROP : XDP_PASS;
}

SEC("xdp") __success __retval(XDP_DROP)
int says_drop(struct xdp_md *ctx) { return drop_ipv4(ctx); }

SEC("xdp") __success __retval(XDP_PASS)
int says_pass(struct xdp_md *ctx) { return drop_ipv4(ctx); }

SEC("xdp") __success __retval(1)
int says_one(struct xdp_md *ctx) { return drop_ipv4(ctx); }

SEC("xdp") __failure __msg("R0 !read_ok") __retval(0)
int rejected_with_a_retval(struct xdp_md *ctx) { asm volatile ("exit"); return 0; }

char LICENSE[] SEC("license") = "GPL";
"""


def test_a_program_that_must_load_and_return_a_value(tmp_path, capsys):
    """__retval: test-run on the selftests' pkt_v4 (an IPv4 frame), the
    program must return that value; XDP_DROP and 1 are the same."""
    (tmp_path / "retval.bpf.c").write_text(RETVAL_CORPUS)
    from bpflab.tool.cli import main

    capsys.readouterr()
    code = main(["verifier", "corpus", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1, out
    lines = out.splitlines()
    assert [line.split()[0] + " " + " ".join(line.split()[2:]) for line in lines[:4]] == [
        "retval/says_drop as annotated", "retval/says_pass NOT as annotated", "retval/says_one as annotated",
        "retval/rejected_with_a_retval NOT as annotated"]
    assert "  retval/says_pass must return 2 under test-run but returned 1" in lines
    assert "  retval/rejected_with_a_retval: __retval goes with __success (a program that must load)" in lines
    assert lines[-1].startswith("4 programs, 2 as annotated, 2 not")


def test_an_unreadable_retval_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "bad.bpf.c").write_text(RETVAL_CORPUS.replace("__retval(1)", "__retval(ONE)"))
    from bpflab.tool.cli import main

    capsys.readouterr()
    code = main(["verifier", "corpus", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("bpflab verifier corpus: error: bad.bpf.o: says_one: __retval(ONE): not a number nor one of "
                   "XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT\n")


def test_retval_runs_on_the_selftests_pkt_v4():
    """The frame, read by scapy: Ethernet to IPv4 with only ihl, total
    length 123 and TCP set (version left 0, as the selftests leave it), TCP
    with data offset 5 and the urgent pointer 123 written in host order."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from bpflab.tool.verifier import PKT_V4

    frame = Ether(PKT_V4)
    assert len(PKT_V4) == 14 + 20 + 20
    assert (frame.dst, frame.src, frame.type) == ("00:00:00:00:00:00", "00:00:00:00:00:00", 0x0800)
    ip = IP(PKT_V4[14:])
    assert (ip.version, ip.ihl, ip.len, ip.proto, ip.src, ip.dst, ip.ttl) == (0, 5, 123, 6, "0.0.0.0", "0.0.0.0", 0)
    tcp = TCP(PKT_V4[34:])
    assert (tcp.dataofs, tcp.urgptr, tcp.sport, tcp.dport, tcp.flags) == (5, 123 << 8, 0, 0, 0)


def test_mismatch_report_marks_found_and_missing():
    from bpflab.tool.verifier import Expect

    ok, report = match("0: r1 = 1\ninvalid access to packet\nR1 offset is outside of the packet\n",
                       [Expect("msg", "invalid access to packet"), Expect("regex", r"R\d hello"),
                        Expect("msg", "outside")])
    assert not ok
    assert "  found    msg: 'invalid access to packet' at offset 10" in report
    assert "  MISSING  regex: 'R\\\\d hello'" in report
    assert report.endswith("R1 offset is outside of the packet\n")


def test_kernel_ranges():
    from bpflab.host.kernel import version as kernel_version
    from bpflab.tool.verifier import in_range

    assert kernel_version("6.18.44-fc-v657") == (6, 18)
    assert in_range(">=6.1,<6.8", (6, 1)) and not in_range(">=6.1,<6.8", (6, 8))
    assert in_range("<6.1", (5, 10))


def test_ranged_expectations_apply_only_to_their_kernels():
    """packet_bounds words its message by kernel range, one of them ">=7.2":
    a range's own "=" must not end the annotation's key."""
    obj = BUILD_DIR / "verifier" / "packet_bounds.bpf.o"

    def regexes(version):
        (case,) = [c for c in cases_in(obj, version) if c.program == "no_bounds_check"]
        return [e.text for e in case.expects if e.kind == "regex"]

    assert regexes((6, 18)) == ["R[0-9] offset is outside of the packet"]
    assert regexes((7, 2)) == regexes((7, 3)) == ["R[0-9] min value is outside of the allowed memory range"]


def test_uninitialised_padding_misses_the_entry_and_a_zeroed_key_finds_it():
    """Not a verifier error but a silent miss, shown with test-run."""
    import ctypes

    from bpflab.libbpf import XDP_DROP, XDP_PASS, BpfObject
    from bpflab.loaders.objects import BUILD_DIR

    class PaddedKey(ctypes.Structure):  # ctypes zero-fills the 3 padding bytes
        _fields_ = [("addr", ctypes.c_uint32), ("proto", ctypes.c_uint8)]

    with BpfObject(BUILD_DIR / "tests" / "padding.bpf.o") as obj:
        assert obj.btf.struct("padded_key").size == 8 == ctypes.sizeof(PaddedKey)
        obj.map("entries").bind(PaddedKey, ctypes.c_uint32).update(PaddedKey(0x0A000001, 6), 1)
        frame = bytes(64)
        assert obj.program("key_with_stale_padding").test_run(frame).retval == XDP_DROP  # missed
        assert obj.program("key_zero_initialised").test_run(frame).retval == XDP_PASS  # found
