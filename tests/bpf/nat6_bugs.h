/* SPDX-License-Identifier: GPL-2.0 */
/* A small IPv6 XDP NAT written the way code elsewhere is written, with its
 * own checksum arithmetic: TCP to [fd00:96::10]:80 and UDP to
 * [fd00:96::10]:53 go to [fd00:244::5]:8080 and :5353, sent back out
 * (XDP_TX). Each tests/bpf/nat6_*.bpf.c builds it with one bug switched on,
 * the one its name says; nat6_correct has none. `bpflab csum` must report
 * every bug and pass the correct one (tests/test_tool_csum_ipv6.py). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* fd00:96::10 and fd00:244::5, as 32-bit words in host order */
#define VIP_0 0xfd000096
#define VIP_3 0x00000010
#define BACKEND_0 0xfd000244
#define BACKEND_3 0x00000005

static __always_inline int is_vip(const struct in6_addr *a)
{
	return a->s6_addr32[0] == bpf_htonl(VIP_0) && !a->s6_addr32[1] && !a->s6_addr32[2] &&
	       a->s6_addr32[3] == bpf_htonl(VIP_3);
}

/* RFC 1624 eqn 3 over every 16-bit word that changes: the address (8 words)
 * and the port, summed in the order the CPU loads them, folded twice. */
static __always_inline __u16 updated(__u16 check, const __u16 *old_addr, const __u16 *new_addr, __u16 old_port,
				     __u16 new_port)
{
	__u32 sum = (__u16)~check;

	for (int i = 0; i < 8; i++)
		sum += (__u16)~old_addr[i] + (__u32)new_addr[i];
	sum += (__u16)~old_port + (__u32)new_port;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int nat6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct in6_addr backend = {.s6_addr32 = {bpf_htonl(BACKEND_0), 0, 0, bpf_htonl(BACKEND_3)}};
	__u16 *check, *dport, to;
	__u8 tmp[ETH_ALEN];
	int udp = 0;

	if ((void *)(ip6 + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	if (!is_vip(&ip6->daddr))
		return XDP_PASS;
	if (ip6->nexthdr == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip6 + 1);

		if ((void *)(tcp + 1) > data_end || tcp->dest != bpf_htons(80))
			return XDP_PASS;
		check = &tcp->check, dport = &tcp->dest, to = bpf_htons(8080);
	} else if (ip6->nexthdr == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(ip6 + 1);

		if ((void *)(uh + 1) > data_end || uh->dest != bpf_htons(53))
			return XDP_PASS;
		check = &uh->check, dport = &uh->dest, to = bpf_htons(5353), udp = 1;
	} else {
		return XDP_PASS;
	}
#if defined(BUG_ZEROES_UDP)
	/* IPv4's shortcut: "no checksum". Over IPv6 there is no such thing. */
	*check = udp ? 0 : updated(*check, ip6->daddr.s6_addr16, backend.s6_addr16, *dport, to);
#elif !defined(BUG_SKIPS_L4)
	/* A UDP checksum of 0 is already wrong over IPv6: leave the sender's mistake as it came. */
	if (!(udp && *check == 0)) {
		*check = updated(*check, ip6->daddr.s6_addr16, backend.s6_addr16, *dport, to);
		if (udp && *check == 0)
			*check = 0xffff;
	}
#else
	(void)check, (void)udp; /* the L4 checksum is left as it was */
#endif
	ip6->daddr = backend;
	*dport = to;
	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
