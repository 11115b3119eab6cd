// SPDX-License-Identifier: GPL-2.0
/* xdp_pong: answer ICMP echo requests in XDP, for the addresses listed in
 * the map pong_addrs, without the kernel's stack ever seeing them.
 *
 * The request goes back out of the interface it came in on (XDP_TX) with
 * MACs and addresses swapped, the type turned from 8 (request) into 0
 * (reply) and the TTL reset to 64. Swapping addresses leaves both checksums
 * as they were (a one's complement sum does not care about order); the type
 * and the TTL change one 16-bit word each, so the ICMP and the IPv4 header
 * checksums are updated for them (RFC 1624 eqn 3). An example of a program
 * tested with bpflab from outside: see the README, "Test your own program".
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define REPLY_TTL 64
#define MAX_SCAN 512 /* bytes of an echo message looked at for "all zero" */

struct icmp_echo {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 sequence;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __be32);   /* an address to answer for */
	__type(value, __u8);   /* 1 */
} pong_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);   /* replies sent */
} pong_replies SEC(".maps");

/* The IPv4 total length, bounded for the verifier. Older verifiers keep no
 * bounds through a byte swap, so `iph + ntohs(tot_len)` is refused ("math
 * between pkt pointer and register with unbounded min value": 5.10 refused
 * this program so; bpflab's own programs met it on 6.1). A mask restores
 * them, and the empty asm keeps clang from dropping a mask it can prove
 * redundant. */
static __always_inline __u32 ip_total_length(const struct iphdr *iph)
{
	__u32 len = bpf_ntohs(iph->tot_len);

	asm volatile("" : "+r"(len));
	return len & 0xffff;
}

/* HC' = ~(~HC + ~m + m') for one 16-bit word, folded twice. */
static __always_inline __sum16 csum_replace(__sum16 check, __be16 old, __be16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + (__u16)new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* 1 if [p, end) is all zero bytes, 0 if not, -1 if too long to tell. */
static __always_inline int all_zero(const __u8 *p, const void *end, const void *data_end)
{
	for (int i = 0; i < MAX_SCAN; i++) {
		if ((void *)(p + i) >= end)
			return 1;
		if ((void *)(p + i + 1) > data_end)
			return -1;
		if (p[i])
			return 0;
	}
	return -1;
}

SEC("xdp")
int xdp_pong(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct icmp_echo *icmp;
	__u8 mac[ETH_ALEN];
	__be16 old_word, new_word;
	__sum16 check;
	void *msg_end;
	int zero_rest;
	__be32 addr;
	__u32 zero = 0;
	__u64 *replies;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (iph->version != 4 || iph->ihl < 5 || iph->protocol != IPPROTO_ICMP)
		return XDP_PASS;
	if (iph->frag_off & bpf_htons(0x3fff)) /* a fragment: the stack reassembles it */
		return XDP_PASS;
	icmp = (void *)iph + iph->ihl * 4;
	msg_end = (void *)iph + ip_total_length(iph);
	if ((void *)(icmp + 1) > data_end || (void *)(icmp + 1) > msg_end)
		return XDP_PASS;
	if (icmp->type != ICMP_ECHO || icmp->code != 0)
		return XDP_PASS;
	addr = iph->daddr;
	if (!bpf_map_lookup_elem(&pong_addrs, &addr))
		return XDP_PASS;

	/* type 8 -> 0: the first word of the ICMP header changes */
	old_word = *(__be16 *)icmp;
	check = csum_replace(icmp->checksum, old_word, bpf_htons(ICMP_ECHOREPLY << 8));
	/* Eqn 3 cannot tell a message that sums to -0 (its checksum 0x0000)
	 * from one of all zero bytes, which sums to +0: its checksum is 0xFFFF
	 * (a receiver rejects 0x0000 there). `bpflab csum` found this: look. */
	if (check == 0) {
		zero_rest = all_zero((void *)&icmp->id, msg_end, data_end);
		if (zero_rest < 0)
			return XDP_PASS; /* too long to tell here: the stack answers */
		if (zero_rest)
			check = 0xffff;
	}
	icmp->type = ICMP_ECHOREPLY;
	icmp->checksum = check;

	/* TTL: the word it shares with the protocol changes */
	old_word = *(__be16 *)&iph->ttl;
	iph->ttl = REPLY_TTL;
	new_word = *(__be16 *)&iph->ttl;
	iph->check = csum_replace(iph->check, old_word, new_word);

	iph->daddr = iph->saddr;
	iph->saddr = addr;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	replies = bpf_map_lookup_elem(&pong_replies, &zero);
	if (replies)
		*replies += 1;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
