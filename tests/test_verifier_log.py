"""What VerifierError makes of the verifier's log, on logs recorded from
real kernels (tests/verifier_logs/KERNEL-CASE.log: the program of
test_binding's test_verifier_rejection_carries_program_name_and_log,
which reads p[12] with no bounds check)."""
from pathlib import Path

import pytest

from bpflab.libbpf import VerifierError

LOGS = Path(__file__).parent / "verifier_logs"


def rejected(log_name: str) -> VerifierError:
    return VerifierError(13, "unchecked", (LOGS / log_name).read_text())


@pytest.mark.parametrize("log_name", ["7.2-packet-bounds.log", "7.3-packet-bounds.log"])
def test_the_message_is_the_verifiers_last_word_before_statistics_and_report(log_name):
    """7.3 follows its classic log with a report (Reason, At, Causal path,
    Suggestion); the message stays the classic conclusion, as on 7.2."""
    err = rejected(log_name)
    assert err.message == "R1 min value is outside of the allowed memory range"
    assert str(err) == "verifier rejected program 'unchecked': R1 min value is outside of the allowed memory range"


def test_the_diagnosis_is_the_reports_headline_where_there_is_one():
    assert rejected("7.3-packet-bounds.log").diagnosis == "Memory Safety: Access outside bounds"
    assert rejected("7.2-packet-bounds.log").diagnosis is None


def test_a_log_with_only_statistics_says_so():
    err = VerifierError(13, "p", "processed 0 insns (limit 1000000)\n")
    assert err.message == "(the kernel gave no verifier log)"


# The statistics of BPF_LOG_STATS as three kernels write them (the programs:
# tests/bpf/stats_bpf_loop.bpf.c, a main program and a callback subprogram;
# bpf/verifier/map_null_check.bpf.c's rejected one). The expected values
# are read off the logs.
@pytest.mark.parametrize("log_name, expected", [
    ("6.18-stats-bpf-loop.log", dict(insns=49, max_states_per_insn=2, total_states=3, peak_states=3, mark_read=0,
                                     verification_us=140, stack_depth=32)),
    # 7.2: " max N" after the stack, "insns processed N" before the classic line.
    ("7.2-stats-bpf-loop.log", dict(insns=49, max_states_per_insn=2, total_states=3, peak_states=4, mark_read=0,
                                    verification_us=7262, stack_depth=32)),
    ("7.2-stats-map-null-check.log", dict(insns=7, max_states_per_insn=0, total_states=0, peak_states=0, mark_read=0,
                                          verification_us=14962, stack_depth=8)),
    # 7.3: "stack depth max" and a line per subprogram (stack 32 and 0).
    ("7.3-stats-bpf-loop.log", dict(insns=49, max_states_per_insn=2, total_states=3, peak_states=4, mark_read=0,
                                    verification_us=5900, stack_depth=32)),
    ("6.18-stats-map-null-check.log", dict(insns=7, max_states_per_insn=0, total_states=0, peak_states=0, mark_read=0,
                                           verification_us=35, stack_depth=8)),
    ("7.3-stats-map-null-check.log", dict(insns=7, max_states_per_insn=0, total_states=0, peak_states=0, mark_read=0,
                                          verification_us=28790, stack_depth=8)),
    # tests/bpf/stats_subprog.bpf.c: a global function with a stack of its own (16 and 32 bytes).
    *((f"{kernel}-stats-subprog.log", dict(insns=35, max_states_per_insn=0, total_states=2, peak_states=2, mark_read=0,
                                           verification_us=us, stack_depth=48))
      for kernel, us in (("6.18", 105), ("7.2", 27023), ("7.3", 38389))),
])
def test_the_statistics_of_each_kernels_log(log_name, expected):
    from bpflab.tool.stats import conclusion, parse_log

    log = (LOGS / log_name).read_text()
    assert parse_log(log) == expected
    rejected = "map-null-check" in log_name
    assert conclusion(log) == (["R0 invalid mem access 'map_value_or_null'"] if rejected
                               else ["(the kernel gave no verifier log)"])
