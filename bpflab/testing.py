"""Testing your own XDP or tc program with bpflab: the public API in one
place (README: "Test your own program"). With bpflab installed, pytest
also gets the fixtures (pair_lab, dnat_lab, lab_factory, attach,
assert_frame_arrives), the checksum rule and pcaps of failing tests.

    from bpflab.testing import AnyProgram, Target, assert_checksums, build, pair, towards_peer

    def test_my_program(pair_lab, attach):
        prog = attach(AnyProgram, "build/mine.bpf.o", "eth0", netns=pair_lab.netns("right"), mode="generic")
        pair_lab.send("left", "eth0", towards_peer(pair_lab.topology, "left") / UDP(dport=7))
        assert prog.dump("counts") == [{"key": 17, "value": 1}]

    with Target("build/mine.bpf.o") as target:      # BPF_PROG_TEST_RUN, exact output
        outcome = target.run(frame)                  # outcome.verdict, outcome.data

    assert corpus_problems("must_reject/") == []     # __failure/__msg as annotated
"""
from bpflab.lab import TOPOLOGIES, Endpoint, Lab, Link, Neighbour, Route, Topology, build, dnat, pair, pair6
from bpflab.lab.checksums import BadChecksum, assert_checksums, verify_frame, verify_rewrite
from bpflab.lab.frames import towards_peer
from bpflab.lab.packets import rewrite
from bpflab.libbpf import BpfObject
from bpflab.libbpf.btf_codec import EncodeError, dump_map, fill_map
from bpflab.loaders.any_program import AnyProgram
from bpflab.tool.csum import check as check_checksums
from bpflab.tool.target import Outcome, Target
from bpflab.tool.verifier import CorpusError, corpus_problems

__all__ = [
    "TOPOLOGIES", "AnyProgram", "BadChecksum", "BpfObject", "CorpusError", "Endpoint", "EncodeError", "Lab", "Link", "Neighbour",
    "Outcome", "Route", "Target", "Topology", "assert_checksums", "build", "check_checksums", "corpus_problems", "dnat", "dump_map",
    "fill_map", "pair", "pair6", "rewrite", "towards_peer", "verify_frame", "verify_rewrite",
]
