"""How much a test does where it runs. The kernel matrix runs the suite in
VMs (BPFLAB_IN_VM, set by `bpflab kernels`), under software emulation 20-40x
slower than the host, with the "vm" Hypothesis profile (conftest.py);
property tests follow the profile's max_examples, and a test that sizes its
own loops asks IN_VM."""
import os

IN_VM = os.environ.get("BPFLAB_IN_VM") == "1"
