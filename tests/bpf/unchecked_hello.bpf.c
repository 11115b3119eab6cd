// SPDX-License-Identifier: GPL-2.0
/* Rejected on purpose: a `hello` whose packet read has no bounds check, for
 * what the hello command line says when the verifier refuses its object
 * (tests/test_hello.py). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp") int hello(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data;

	return p[12] == 8 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
