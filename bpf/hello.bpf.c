// SPDX-License-Identifier: GPL-2.0
/* hello: the smallest useful XDP program. Every frame that arrives prints one
 * trace line and is passed on to the kernel's stack unchanged. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int hello(struct xdp_md *ctx)
{
	/* The length makes each line attributable: tests inject frames of a
	 * length nobody else uses, since trace output is machine-wide. */
	__u32 len = ctx->data_end - ctx->data;

	bpf_printk("bpflab hello: packet len=%u ifindex=%u", len, ctx->ingress_ifindex);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
