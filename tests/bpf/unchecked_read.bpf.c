// SPDX-License-Identifier: GPL-2.0
/* Rejected on purpose: a packet byte read without a bounds check, for the
 * tests of what a verifier rejection looks like (tests/test_binding.py). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp") int unchecked(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data;

	return p[12] == 8 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
