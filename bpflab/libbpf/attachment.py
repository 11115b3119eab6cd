"""What every way of attaching a program in bpflab has in common."""
from __future__ import annotations


class Attachment:
    """A program attached somewhere (an XDP link, a tc link or filter, a
    loader's program on an interface). close() detaches it; closing again
    does nothing; a with block closes it at its end, however it ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
