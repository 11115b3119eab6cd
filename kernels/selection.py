"""A pytest plugin for the host's collection before the guests boot: it
writes which collected test files hold no selected test, so a guest
imports only the files it runs (every import costs seconds under emulation,
in each pytest worker). Loaded with -p; writes to $BPFLAB_SELECTION_OUT."""
from __future__ import annotations

import json
import os
from pathlib import Path

OUT_ENV = "BPFLAB_SELECTION_OUT"
_collected: set[Path] = set()


def pytest_itemcollected(item) -> None:
    _collected.add(Path(item.path))


def pytest_collection_finish(session) -> None:
    out = os.environ.get(OUT_ENV)
    if not out:
        return
    root = session.config.rootpath
    unselected = _collected - {Path(item.path) for item in session.items}
    Path(out).write_text(json.dumps(sorted(str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
                                           for p in unselected)))
