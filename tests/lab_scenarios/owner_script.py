"""A lab owner that builds a lab, starts a server in it and a process that
escapes it (a daemon whose parent exited), pins something, prints
"PREFIX SERVER_PID ESCAPED_PID" and waits to be killed (SIGKILL) or stopped
(SIGTERM, SIGINT)."""
import subprocess
import sys
import time

from bpflab.lab import builder, dnat

lab = builder.build(dnat())
try:
    lab.pin_dir.mkdir()
    (lab.pin_dir / "marker").mkdir()  # a directory stands in for a pin
    server = lab.popen("backend", ["sleep", "300"])
    daemon = lab.popen("backend", ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], stdout=subprocess.PIPE,
                       text=True)
    escaped = daemon.communicate(timeout=30)[0].strip()
    print(lab.prefix, server.pid, escaped, flush=True)
    time.sleep(300)
except KeyboardInterrupt:
    sys.exit(0)
finally:
    lab.teardown()
