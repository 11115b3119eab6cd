// SPDX-License-Identifier: GPL-2.0
/* The corrected twin of libc_call.bpf.c: the BPF helper instead of libc. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpflab/annotations.h>

SEC("xdp")
__success
int calls_helper(struct xdp_md *ctx)
{
	return bpf_get_prandom_u32() & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
