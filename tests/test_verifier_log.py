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
