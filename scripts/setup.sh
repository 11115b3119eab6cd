#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs, as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang clang-19 llvm make gcc libbpf-dev libbpf1 bpftool linux-libc-dev iproute2 ethtool tcpdump
              nftables iptables iputils-ping curl util-linux python3 python3-venv
              qemu-system-x86 udev kmod busybox-static)  # the last line: the kernel matrix's VMs

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: run as root (it installs packages and the tests load BPF programs)" >&2
    exit 2
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] || ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# tracefs carries bpf_printk output, bpffs holds pinned maps.
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

if [ ! -x .venv/bin/nox ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/pip install -q -e '.[test]'
make -s
# The oracle bpflab verifier stats is measured against: the kernel's veristat,
# from Debian's archive (trixie's package; the machine's apt is not touched).
.venv/bin/python -m tests.veristat >/dev/null
