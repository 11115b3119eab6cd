"""The network rule (test traffic only between namespaces a test made) holds
for frames too: scapy fills a missing Ether dst by asking the root
namespace's neighbour cache and, on a miss, by sending ARP out of its
default interface. So no frame this project builds leaves dst to scapy."""
import ast

from bpflab.host.paths import REPO_ROOT

SOURCES = ["bpflab", "loaders", "lab", "tests", "bench", "kernels", "examples", "noxfile.py"]


def ether_calls_without_dst(source: str):
    """(line, text) of every Ether(...) that builds a frame without dst=
    (Ether(raw_bytes), which parses, is fine)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Ether":
            if not node.args and not any(k.arg == "dst" for k in node.keywords):
                yield node.lineno, ast.get_source_segment(source, node)


def python_files():
    for name in SOURCES:
        path = REPO_ROOT / name
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def test_no_frame_leaves_its_destination_mac_to_scapy():
    found = [f"{path.relative_to(REPO_ROOT)}:{line}: {text}" for path in python_files()
             for line, text in ether_calls_without_dst(path.read_text())]
    assert found == []


def test_the_scan_finds_one():
    assert sorted(line for line, _ in ether_calls_without_dst("f = Ether() / IP()\ng = Ether(src='x', type=2)\n"
                                                         "h = Ether(raw)\ni = Ether(dst='y')")) == [1, 2]
