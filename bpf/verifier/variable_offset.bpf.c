// SPDX-License-Identifier: GPL-2.0
/* Rule: a pointer moved by a variable amount (ip->ihl * 4) needs a fresh
 * bounds check before use: the earlier check said nothing about it. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpflab/annotations.h>

SEC("xdp")
__failure
__msg("invalid access to packet")
/* Worded so up to 6.18; 7.2 and 7.3 say "min value is outside of the
 * allowed memory range" (6.19-7.1 not measured). */
__regex_kernel("<7.2", "R[0-9] offset is outside of the packet")
__regex_kernel(">=7.2", "R[0-9] min value is outside of the allowed memory range")
int stale_bounds_after_ihl(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct tcphdr *tcp;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	tcp = (void *)ip + ip->ihl * 4;
	return tcp->dest == bpf_htons(80) ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
__success
int fresh_bounds_after_ihl(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct tcphdr *tcp;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > data_end)
		return XDP_PASS;
	return tcp->dest == bpf_htons(80) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
