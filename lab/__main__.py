import sys

from bpflab.lab.cli import main

sys.exit(main())
