"""The Scale page's plot: per packet against the service count for
xdp_dnat and kube-proxy's two datapaths, each a new connection through the
lab beyond the generator's cost (bench.json's `scale.services`)."""
from __future__ import annotations

from pathlib import Path

SERIES = (("xdp_dnat_lab_ns", "xdp_dnat"), ("nft_ns", "kube-proxy nftables (verdict maps)"),
          ("iptables_ns", "kube-proxy iptables (a rule per service)"))


def series(scale_results: dict) -> dict[str, tuple[list[int], list[float]]]:
    """label: (service counts, ns per packet), for each datapath measured."""
    rows = sorted(scale_results["services"], key=lambda r: r["services"])
    return {label: ([r["services"] for r in rows], [r[key] for r in rows])
            for key, label in SERIES if all(key in r for r in rows)}


def write(scale_results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # a file, no display
    from matplotlib import pyplot

    fig, ax = pyplot.subplots(figsize=(7, 4.2), dpi=110)
    try:
        for label, (counts, ns) in series(scale_results).items():
            ax.plot(counts, ns, marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("services (10 backends each)")
        ax.set_ylabel("ns per new connection beyond the generator")
        ax.set_title("Per-packet cost as the cluster grows (dnat lab, every packet a new connection)", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, metadata={"Software": None})  # no version string: the same figures, the same file
    finally:
        pyplot.close(fig)
    return path
