"""A lab owner that builds a lab, starts a server in it, pins something,
says "ready" and waits to be killed (SIGKILL) or stopped (SIGTERM)."""
import sys
import time

from lab import builder, dnat

lab = builder.build(dnat())
try:
    lab.pin_dir.mkdir()
    (lab.pin_dir / "marker").mkdir()  # a directory stands in for a pin
    server = lab.popen("backend", ["sleep", "300"])
    print(lab.prefix, server.pid, flush=True)
    time.sleep(300)
except KeyboardInterrupt:
    sys.exit(0)
finally:
    lab.teardown()
