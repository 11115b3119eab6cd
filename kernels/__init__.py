"""Run the suite on other kernels: Debian's kernel packages booted in a
virtual machine (virtme-ng over qemu), the host's tools shared read-only."""
