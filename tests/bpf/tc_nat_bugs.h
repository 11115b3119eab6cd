/* SPDX-License-Identifier: GPL-2.0 */
/* A small tc NAT written the way code elsewhere is written, with the
 * kernel's checksum helpers: TCP to 10.96.0.10:80 and UDP to 10.96.0.10:53
 * go to 10.244.1.5:8080 and :5353. Each tests/bpf/tc_nat_*.bpf.c builds it
 * with one bug switched on, the one its name says; tc_nat_correct has none.
 * Most of them are right for a CHECKSUM_NONE packet, which is all that
 * test-run hands a tc program: `bpflab csum` must report each in the
 * checksum states where it is wrong and pass the correct one in all
 * (tests/test_tool_csum_states.py). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define VIP 0x0a60000a        /* 10.96.0.10 */
#define BACKEND 0x0af40105    /* 10.244.1.5 */

SEC("tc")
int tc_nat(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__be32 old_ip, new_ip = bpf_htonl(BACKEND);
	__be16 old_port, new_port;
	__u32 l4_off, check_off, mangled = 0, addr_pseudo = BPF_F_PSEUDO_HDR, port_pseudo = 0, port_store = 0;

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
