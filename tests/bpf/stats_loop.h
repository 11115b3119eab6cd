/* SPDX-License-Identifier: GPL-2.0 */
/* A loop whose bound the including file sets (LOOP_BOUND): the verifier
 * walks every iteration, so what it processes grows with the bound, one
 * iteration's instructions at a time. The same object name for every bound
 * (the tests copy each build to stats_loop.bpf.o): a code change that
 * doubles a loop, as a baseline sees it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int stats_loop(struct xdp_md *ctx)
{
	__u32 sum = 0;

#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < LOOP_BOUND; i++) {
		void *data = (void *)(long)ctx->data;
		void *data_end = (void *)(long)ctx->data_end;

		if (data + i + 1 > data_end)
			break;
		sum += *(__u8 *)(data + i);
	}
	return sum & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
