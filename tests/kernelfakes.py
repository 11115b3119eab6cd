"""Stand-ins for a VM of the kernel engine (bpflab.kernels.matrix), for
tests of what the engine does with what a VM prints."""
from __future__ import annotations


def fake_vng(tmp_path, monkeypatch, lines: list[str], then: str = "") -> None:
    """vng replaced by a shell script that prints `lines`, then runs `then`."""
    from bpflab.kernels import matrix

    script = tmp_path / "vng.sh"
    script.write_text("printf '%s\\n' " + " ".join(f"'{line}'" for line in lines) + "\n" + then)
    monkeypatch.setattr(matrix, "vng_command", lambda image, script_text: ["sh", str(script)])
