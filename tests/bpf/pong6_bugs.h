/* SPDX-License-Identifier: GPL-2.0 */
/* An ICMPv6 echo responder in XDP, as code ported from an ICMPv4 one is
 * written: echo requests to fd00:53::1 are answered in place (MACs and
 * addresses swapped, type 128 to 129, hop limit 64) with the checksum
 * summed again from scratch. ICMPv6's covers the IPv6 pseudo-header, which
 * ICMPv4's has none of: pong6_forgets_pseudo_header sums the message alone,
 * pong6_correct sums both (tests/test_tool_csum_ipv6.py). The address is a
 * constant of the code, in no map: `bpflab csum --target` aims at it. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_WORDS 256 /* echo messages up to 512 bytes are answered */

/* fd00:53::1, as 32-bit words in host order */
#define ME_0 0xfd000053
#define ME_3 0x00000001

SEC("xdp")
int pong6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct icmp6hdr *icmp = (void *)(ip6 + 1);
	struct in6_addr peer;
	__u8 tmp[ETH_ALEN];
	__u32 sum = 0, len;
	__u16 *word;

	if ((void *)(icmp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	if (ip6->nexthdr != IPPROTO_ICMPV6 || icmp->icmp6_type != ICMPV6_ECHO_REQUEST || icmp->icmp6_code)
		return XDP_PASS;
	if (ip6->daddr.s6_addr32[0] != bpf_htonl(ME_0) || ip6->daddr.s6_addr32[1] || ip6->daddr.s6_addr32[2] ||
	    ip6->daddr.s6_addr32[3] != bpf_htonl(ME_3))
		return XDP_PASS;
	len = bpf_ntohs(ip6->payload_len);
	if (len > 2 * MAX_WORDS || (void *)icmp + len > data_end)
		return XDP_PASS;

	peer = ip6->saddr;
	ip6->saddr = ip6->daddr;
	ip6->daddr = peer;
	ip6->hop_limit = 64;
	icmp->icmp6_type = ICMPV6_ECHO_REPLY;
	icmp->icmp6_cksum = 0;
#ifndef BUG_FORGETS_PSEUDO_HEADER
	/* source, destination, the upper-layer length as 32 bits, next header 58 */
	for (int i = 0; i < 8; i++)
		sum += ip6->saddr.s6_addr16[i] + ip6->daddr.s6_addr16[i];
	sum += bpf_htons(len) + bpf_htons(IPPROTO_ICMPV6);
#endif
	word = (void *)icmp;
	for (__u32 i = 0; i < MAX_WORDS; i++) {
		if (2 * i + 2 > len || (void *)(word + i + 1) > data_end)
			break;
		sum += word[i];
	}
	if (len & 1) {
		__u8 *last = (void *)icmp + (len & (2 * MAX_WORDS - 1)) - 1;

		if ((void *)(last + 1) > data_end)
			return XDP_PASS;
		sum += bpf_htons((__u16)*last << 8);
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	icmp->icmp6_cksum = ~sum;

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
