// SPDX-License-Identifier: GPL-2.0
/* Subprograms with stacks of their own (global functions stay separate
 * subprograms): the verifier reports a stack figure for each, and
 * stack_depth is their sum, as veristat sums them. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int sum_bytes(struct xdp_md *ctx)
{
	volatile __u8 copy[24] = {};
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + sizeof(copy) > data_end)
		return 0;
	__builtin_memcpy((void *)copy, data, sizeof(copy));
	return copy[0] + copy[23];
}

SEC("xdp")
int stats_subprog(struct xdp_md *ctx)
{
	volatile __u64 scratch[2] = {};

	scratch[1] = sum_bytes(ctx);
	return scratch[1] & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
