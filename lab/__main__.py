import sys

from bpflab.host.interrupts import run_command
from bpflab.lab.cli import PROG, main

sys.exit(run_command(PROG, main))
