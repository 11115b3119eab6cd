"""The bench's goal lines from a results dict: each ratio is
computed from the run's own figures and judged against its target."""
from bpflab.bench.__main__ import goals


def results(xdp_ns=100, cli_lost=0, offered_drops=0):
    return {
        "test_run_ns": {"baseline": 25, "floor_dnat": 80, "xdp_dnat": xdp_ns},
        "lab_mpps": {"xdp_native": {"median_mpps": 2.5}, "nft_dnat": {"median_mpps": 0.5}},
        "ringbuf_events_per_s": {"events_per_s": 1_200_000},
        "offered_rate_drops": {"offered_per_s": 500_000, "dropped": offered_drops},
        "cli_json_events_per_s": {"dropped": cli_lost, "sent": 900_000, "written": 900_000 - cli_lost},
        "suite_s": {"n2_s": 61.0},
    }


def test_each_goal_is_judged_by_its_own_ratio():
    got = {g["goal"]: (g["value"], g["met"]) for g in goals(results())}
    assert got == {
        "xdp_dnat per packet <= 4x the empty baseline": (4.0, True),
        "xdp_dnat per packet <= 1.3x the floor": (1.25, True),
        "lab: XDP native >= 5x nftables DNAT": (5.0, True),
        "Python ring consumer >= 1M events/s": (1_200_000, True),
        "0 drops at 500,000 events/s offered": (0, True),
        "mytcpdump --json > file writes every event at 300k events/s offered": (0, True),
        "host suite <= 60 s at -n 2": (61.0, False),
    }


def test_a_miss_is_a_miss():
    got = {g["goal"]: g["met"] for g in goals(results(xdp_ns=105, cli_lost=3, offered_drops=1))}
    assert not got["xdp_dnat per packet <= 4x the empty baseline"]
    assert not got["xdp_dnat per packet <= 1.3x the floor"]
    assert not got["0 drops at 500,000 events/s offered"]
    assert not got["mytcpdump --json > file writes every event at 300k events/s offered"]


def test_the_generators_cost_is_taken_out_per_packet():
    from bpflab.bench.__main__ import beyond_generator

    lab = {"generator": {"median_mpps": 5.0}, "xdp_native": {"median_mpps": 2.0}, "nft_dnat": {"median_mpps": 0.5}}
    # 1/5 Mpps = 200 ns, 1/2 Mpps = 500 ns, 1/0.5 Mpps = 2000 ns
    assert beyond_generator(lab) == {"xdp_native": 300.0, "nft_dnat": 1800.0}
