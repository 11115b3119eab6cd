// SPDX-License-Identifier: GPL-2.0
/* Mistakes the verifier must keep rejecting in a program like xdp_pong, each
 * with its corrected twin: `bpflab verifier examples/xdp_pong/must_reject`.
 * A verifier-rejection corpus of your own looks like this (README: Test your
 * own program). Built by `bpflab verifier`, not by make.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpflab/annotations.h>

/* The ICMP type is read right after the IPv4 header without checking that
 * the packet is that long: the verifier knows only the Ethernet and IPv4
 * headers are inside data_end, so the read past them is refused. */
SEC("xdp")
__failure __msg("invalid access to packet")
int icmp_type_unchecked(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u8 *type;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	type = (void *)(ip + 1);
	return *type == 8 ? XDP_TX : XDP_PASS;
}

/* The twin: one bound check more, and the verifier accepts it. */
SEC("xdp")
__success
int icmp_type_checked(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u8 *type;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	type = (void *)(ip + 1);
	if ((void *)(type + 1) > data_end)
		return XDP_PASS;
	return *type == 8 ? XDP_TX : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
