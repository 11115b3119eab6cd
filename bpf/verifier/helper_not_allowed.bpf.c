// SPDX-License-Identifier: GPL-2.0
/* Rule: a program may call only the helpers of its type (no libc either:
 * calling libc from BPF does not even link). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpflab/annotations.h>

SEC("xdp")
__failure
__regex("(unknown func|program of this type cannot use helper) bpf_redirect_neigh#152")
int tc_helper_in_xdp(struct xdp_md *ctx)
{
	return bpf_redirect_neigh(ctx->ingress_ifindex, 0, 0, 0);
}

SEC("xdp")
__success
int xdp_helper_in_xdp(struct xdp_md *ctx)
{
	return bpf_redirect(ctx->ingress_ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
