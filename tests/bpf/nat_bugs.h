/* SPDX-License-Identifier: GPL-2.0 */
/* A small XDP NAT written the way code elsewhere is written, with its own
 * checksum arithmetic (not bpf/csum.h): TCP to 10.96.0.10:80 and UDP to
 * 10.96.0.10:53 go to 10.244.1.5:8080 and :5353, sent back out (XDP_TX).
 * Each tests/bpf/nat_*.bpf.c builds it with one bug switched on, the one its
 * name says; nat_correct has none. `bpflab csum` must report every bug and
 * pass the correct one (tests/test_tool_csum.py). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define VIP 0x0a60000a        /* 10.96.0.10 */
#define BACKEND 0x0af40105    /* 10.244.1.5 */

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
#ifndef BUG_FOLDS_ONCE
	sum = (sum & 0xffff) + (sum >> 16);
#endif
	return (__u16)sum;
}

/* RFC 1624 eqn 3 for one 16-bit word, on values in network byte order. */
static __always_inline __u16 replace16(__u16 check, __u16 old, __u16 new)
{
	return ~fold((__u16)~check + (__u16)~old + (__u32)new);
}

static __always_inline __u16 replace32(__u16 check, __u32 old, __u32 new)
{
	check = replace16(check, old >> 16, new >> 16);
	return replace16(check, old & 0xffff, new & 0xffff);
}

SEC("xdp")
int nat(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u8 tmp[ETH_ALEN];
	__be16 *dport, *check, to;
	__u32 ihl;
	void *l4;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (iph->daddr != bpf_htonl(VIP) || (iph->frag_off & bpf_htons(0x3fff)))
		return XDP_PASS;
#ifdef BUG_IGNORES_IHL
	ihl = sizeof(*iph);
#else
	ihl = iph->ihl * 4;
	if (ihl < sizeof(*iph))
		return XDP_PASS;
#endif
	l4 = (void *)iph + ihl;
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end || tcp->dest != bpf_htons(80))
			return XDP_PASS;
		dport = &tcp->dest, check = &tcp->check, to = bpf_htons(8080);
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(53))
			return XDP_PASS;
		dport = &udp->dest, check = &udp->check, to = bpf_htons(5353);
	} else {
		return XDP_PASS;
	}

	iph->check = replace32(iph->check, iph->daddr, bpf_htonl(BACKEND));
#ifndef BUG_UPDATES_UDP_ZERO
	if (!(iph->protocol == IPPROTO_UDP && *check == 0)) {
#else
	{
#endif
#ifndef BUG_FORGETS_PSEUDO_HEADER
		*check = replace32(*check, iph->daddr, bpf_htonl(BACKEND));
#endif
		*check = replace16(*check, *dport, to);
		if (iph->protocol == IPPROTO_UDP && *check == 0)
			*check = 0xffff;
	}
	iph->daddr = bpf_htonl(BACKEND);
	*dport = to;
	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
