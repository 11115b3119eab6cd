"""python -m bpflab.loaders [--json]: the programs bpflab ships and how to run each."""
from __future__ import annotations

import json
import sys

from bpflab.host.commandline import OneLineParser
from bpflab.loaders.objects import object_path
from bpflab.loaders.registry import PROGRAMS


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m bpflab.loaders", description=__doc__.split(": ", 1)[1])
    p.add_argument("--json", action="store_true", help="one JSON list of {name, summary, command, object}")
    args = p.parse_args(argv)
    rows = [{"name": name, "summary": prog.summary, "command": f"python -m {prog.module} IFACE [--netns NS] ...",
             "object": str(object_path(name))} for name, prog in PROGRAMS.items()]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['name']:<20}{row['summary']}\n{'':<20}{row['command']}")
    return 0


sys.exit(main())
