"""How long to wait before calling something hung.

The same suite runs on the host and inside emulated VMs (the kernel matrix),
where every process starts and runs 10-20x slower. Waits that detect a hang
scale with BPFLAB_TIME_SCALE (set by kernels.matrix inside its VMs); waits
that prove something does *not* happen stay as they are: a longer quiet
window only costs time, a shorter one would hide nothing."""
import os


def scale() -> float:
    value = os.environ.get("BPFLAB_TIME_SCALE", "1")
    try:
        factor = float(value)
    except ValueError:
        raise ValueError(f"BPFLAB_TIME_SCALE must be a number, not {value!r}") from None
    if factor < 1:
        raise ValueError(f"BPFLAB_TIME_SCALE must be at least 1, not {value!r}")
    return factor


def patience(seconds: float) -> float:
    """`seconds` on this machine's time scale."""
    return seconds * scale()
