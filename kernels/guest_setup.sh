#!/bin/sh
# Runs inside the VM before the suite: what a booted distro would have done.
set -e
mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
mkdir -p /run/netns
for m in veth sch_ingress cls_bpf nf_tables nft_nat nf_nat; do modprobe -q "$m" 2>/dev/null || true; done
ip link set lo up
