// SPDX-License-Identifier: GPL-2.0
/* A program that needs a helper older kernels lack: bpf_loop came with 5.17
 * (helper 181). Kernels before it reject the program ("invalid func"),
 * kernels since load it: bpflab verifier stats shows which. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static long add_one(__u32 index, void *sum)
{
	*(__u64 *)sum += index;
	return 0;
}

SEC("xdp")
int stats_bpf_loop(struct xdp_md *ctx)
{
	__u64 sum = 0;

	bpf_loop(64, add_one, &sum, 0);
	return sum == 64 * 63 / 2 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
