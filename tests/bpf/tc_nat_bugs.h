/* SPDX-License-Identifier: GPL-2.0 */
/* A small dual-stack tc NAT written the way code elsewhere is written, with
 * the kernel's checksum helpers: TCP to 10.96.0.10:80 and UDP to
 * 10.96.0.10:53 go to 10.244.1.5:8080 and :5353, and the same ports of
 * [fd00:96::10] to [fd00:244::5]. Each tests/bpf/tc_nat_*.bpf.c builds it
 * with one bug switched on, the one its name says; tc_nat_correct has none.
 * Most of them are right for a CHECKSUM_NONE packet, which is all that
 * test-run hands a tc program: `bpflab csum` must report each in the
 * checksum states where it is wrong and pass the correct one in all
 * (tests/test_tool_csum_states.py). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define VIP 0x0a60000a        /* 10.96.0.10 */
#define BACKEND 0x0af40105    /* 10.244.1.5 */

/* The port's TCP or UDP header at l4_off: which port it goes to, where its
 * checksum is, and the helpers' flags for it (0: not ours). */
struct l4_rewrite {
	__be16 old_port, new_port;
	__u32 check_off, mangled, port_store;
};

static __always_inline int l4_of(struct __sk_buff *skb, __u8 proto, __u32 l4_off, struct l4_rewrite *rw)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + l4_off;

		if ((void *)(tcp + 1) > data_end || tcp->dest != bpf_htons(80))
			return 0;
		rw->old_port = tcp->dest, rw->new_port = bpf_htons(8080);
		rw->check_off = l4_off + offsetof(struct tcphdr, check);
		return 1;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *udp = data + l4_off;

		if ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(53))
			return 0;
		rw->old_port = udp->dest, rw->new_port = bpf_htons(5353);
		rw->check_off = l4_off + offsetof(struct udphdr, check);
#ifndef BUG_FORGETS_MANGLED_0
		/* UDP checksum 0 means "none" (over IPv6: the sender's mistake): it stays 0, and a computed 0 becomes 0xFFFF. */
		rw->mangled = BPF_F_MARK_MANGLED_0;
#endif
#ifndef BUG_UDP0_STALE_CSUM
		/* Without a checksum nothing balances the port's change: skb->csum must follow it. */
		if (!udp->check)
			rw->port_store = BPF_F_RECOMPUTE_CSUM;
#endif
		return 1;
	}
	return 0;
}

#ifdef BUG_FORGETS_PSEUDO_FLAG
#define ADDR_PSEUDO 0
#else
#define ADDR_PSEUDO BPF_F_PSEUDO_HDR /* the address is in the TCP/UDP pseudo-header */
#endif
#ifdef BUG_PSEUDO_FLAG_ON_PORT
#define PORT_PSEUDO BPF_F_PSEUDO_HDR
#else
#define PORT_PSEUDO 0
#endif

static __always_inline int port_rewritten(struct __sk_buff *skb, __u32 l4_off, struct l4_rewrite *rw)
{
	if (bpf_l4_csum_replace(skb, rw->check_off, rw->old_port, rw->new_port, rw->mangled | PORT_PSEUDO | 2))
		return 0;
	return !bpf_skb_store_bytes(skb, l4_off + 2, &rw->new_port, sizeof(rw->new_port), rw->port_store);
}

#ifdef BUG_IPV6_ADDRESS_STALE_CSUM
#define ADDR6_STORE 0
#else
/* IPv4's header checksum balances an address change in skb->csum; IPv6 has
 * none, so skb->csum must follow the address's bytes. */
#define ADDR6_STORE BPF_F_RECOMPUTE_CSUM
#endif

/* fd00:96::10 to fd00:244::5: the first and last 32-bit words differ. */
static __always_inline int nat6(struct __sk_buff *skb, struct ipv6hdr *ip6)
{
	__u32 l4_off = sizeof(struct ethhdr) + sizeof(*ip6), addr_off = sizeof(struct ethhdr) + offsetof(struct ipv6hdr, daddr);
	__be32 old0 = bpf_htonl(0xfd000096), new0 = bpf_htonl(0xfd000244), old3 = bpf_htonl(0x10), new3 = bpf_htonl(0x5);
	struct l4_rewrite rw = {};

	if (ip6->daddr.s6_addr32[0] != old0 || ip6->daddr.s6_addr32[1] || ip6->daddr.s6_addr32[2] ||
	    ip6->daddr.s6_addr32[3] != old3 || !l4_of(skb, ip6->nexthdr, l4_off, &rw))
		return TC_ACT_OK;
#ifndef BUG_SKIPS_L4_ADDRESS
	if (bpf_l4_csum_replace(skb, rw.check_off, old0, new0, rw.mangled | ADDR_PSEUDO | 4) ||
	    bpf_l4_csum_replace(skb, rw.check_off, old3, new3, rw.mangled | ADDR_PSEUDO | 4))
		return TC_ACT_SHOT;
#endif
	if (!port_rewritten(skb, l4_off, &rw) || bpf_skb_store_bytes(skb, addr_off, &new0, 4, ADDR6_STORE) ||
	    bpf_skb_store_bytes(skb, addr_off + 12, &new3, 4, ADDR6_STORE))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("tc")
int tc_nat(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__be32 old_ip, new_ip = bpf_htonl(BACKEND);
	__be16 old_port, new_port;
	__u32 l4_off, check_off, mangled = 0, addr_pseudo = BPF_F_PSEUDO_HDR, port_pseudo = 0, port_store = 0;

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return TC_ACT_OK;
		return nat6(skb, ip6);
	}
	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (iph->daddr != bpf_htonl(VIP) || (iph->frag_off & bpf_htons(0x3fff)) || iph->ihl < 5)
		return TC_ACT_OK;
	old_ip = iph->daddr;
	l4_off = sizeof(*eth) + iph->ihl * 4;
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = data + l4_off;

		if ((void *)(tcp + 1) > data_end || tcp->dest != bpf_htons(80))
			return TC_ACT_OK;
		old_port = tcp->dest, new_port = bpf_htons(8080);
		check_off = l4_off + offsetof(struct tcphdr, check);
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *udp = data + l4_off;

		if ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(53))
			return TC_ACT_OK;
		old_port = udp->dest, new_port = bpf_htons(5353);
		check_off = l4_off + offsetof(struct udphdr, check);
#ifndef BUG_FORGETS_MANGLED_0
		/* UDP checksum 0 means "none": it stays 0, and a computed 0 becomes 0xFFFF. */
		mangled = BPF_F_MARK_MANGLED_0;
#endif
#ifndef BUG_UDP0_STALE_CSUM
		/* Without a checksum nothing balances the port's change: skb->csum must follow it. */
		if (!udp->check)
			port_store = BPF_F_RECOMPUTE_CSUM;
#endif
	} else {
		return TC_ACT_OK;
	}
#ifdef BUG_FORGETS_PSEUDO_FLAG
	addr_pseudo = 0;
#endif
#ifdef BUG_PSEUDO_FLAG_ON_PORT
	port_pseudo = BPF_F_PSEUDO_HDR;
#endif
	/* The address is in the TCP/UDP pseudo-header. */
#ifndef BUG_SKIPS_L4_ADDRESS
	if (bpf_l4_csum_replace(skb, check_off, old_ip, new_ip, mangled | addr_pseudo | sizeof(new_ip)))
		return TC_ACT_SHOT;
#else
	(void)addr_pseudo;
#endif
	if (bpf_l4_csum_replace(skb, check_off, old_port, new_port, mangled | port_pseudo | sizeof(new_port)))
		return TC_ACT_SHOT;
	if (bpf_l3_csum_replace(skb, sizeof(*eth) + offsetof(struct iphdr, check), old_ip, new_ip, sizeof(new_ip)))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, sizeof(*eth) + offsetof(struct iphdr, daddr), &new_ip, sizeof(new_ip), 0))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, l4_off + 2, &new_port, sizeof(new_port), port_store))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
