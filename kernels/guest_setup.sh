#!/bin/sh
# Runs inside the VM before the command: what a booted distro would have done.
# Arguments: the 9p tag of the cached root, the project's directory (made
# writable, in the guest's memory), then the directories to serve from the cache.
set -e
mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
mkdir -p /run/netns
for m in veth sch_ingress cls_bpf nf_tables nft_nat nf_nat overlay; do modprobe -q "$m" 2>/dev/null || true; done
ip link set lo up

# virtme-ng mounts the root over 9p without a cache: every open and read is a
# round trip to the host (a bare python start took 3 s, importing pyroute2
# 25 s). The same tree, exported read-only under another tag, is mounted with
# the page cache on and the command's directories are bound from it.
tag=$1; project=$2; shift 2
mkdir -p /run/bpflab-root
if mount -t 9p -o ro,trans=virtio,version=9p2000.L,cache=loose,msize=524288 "$tag" /run/bpflab-root; then
    for dir in "$@"; do
        if [ -d "/run/bpflab-root$dir" ]; then
            mkdir -p "$dir"
            mount --bind "/run/bpflab-root$dir" "$dir"
        fi
    done
else
    echo "guest_setup: no cached root (tag $tag); the command runs over uncached 9p, slower"
fi
# The project writable (what the command writes stays in the guest's memory):
# an overlay over it, whatever serves it now.
mkdir -p /run/bpflab-project
mount -t tmpfs tmpfs /run/bpflab-project
mkdir -p /run/bpflab-project/upper /run/bpflab-project/work
if ! mount -t overlay overlay -o "lowerdir=$project,upperdir=/run/bpflab-project/upper,workdir=/run/bpflab-project/work" "$project"; then
    echo "guest_setup: $project stays read-only in the guest (no overlayfs)"
fi
