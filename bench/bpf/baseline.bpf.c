// SPDX-License-Identifier: GPL-2.0
/* The floor of test-run cost: an XDP program that only passes. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int baseline(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
