// SPDX-License-Identifier: GPL-2.0
/* The floor of a DNAT in XDP: only what xdp_dnat cannot avoid for a packet
 * of an established flow to a service. Parse Ethernet, IPv4 and the L4
 * ports (no options, no VLAN, no fragments: the frames the bench sends have
 * none), one service lookup, one connection lookup (flows stay put: issue
 * 20) holding the backend itself, one bpf_fib_lookup, the address and port
 * writes with their checksum updates, the MACs, the redirect. No counters,
 * no checks a real datapath needs for other frames: xdp_dnat's cost is read
 * against this (test-run: TCP; the lab: UDP).
 *
 * floor_dnat_nexthop is the same without the FIB lookup: the egress
 * interface and both MACs from a one-entry map, as a datapath would have
 * them if user space kept each backend's next hop (xdp_dnat's contract asks
 * the kernel per packet): what the lab's XDP figure could reach without it.
 *
 * floor_forward is less than any DNAT: no parsing, no lookup but the next
 * hop, only the MACs and the redirect. In the lab it is the ceiling of every
 * XDP program that forwards from the lb to the backend: the generator, two
 * veth crossings, the redirect and the sink, which no datapath can shed. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "csum.h"
#include "xdp_dnat.h"

#define AF_INET 2

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct service_key);
	__type(value, struct backend);
} services SEC(".maps");

/* flow -> its backend; a new flow takes the service's. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, struct backend);
} flows SEC(".maps");

/* The next hop floor_dnat_nexthop uses (bench/datapath.py: Nexthop). */
struct nexthop {
	__u32 ifindex;
	unsigned char smac[ETH_ALEN];
	unsigned char dmac[ETH_ALEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nexthop);
} nexthop SEC(".maps");

/* The ports sit at the same offsets in TCP and UDP; the checksum does not. */
struct ports {
	__be16 source;
	__be16 dest;
};

static __always_inline int floor(struct xdp_md *ctx, int ask_fib)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct ports *l4 = (void *)(iph + 1);
	struct tcphdr *tcp = (void *)l4;
	struct udphdr *udp = (void *)l4;
	struct bpf_fib_lookup fib = {};
	struct service_key key = {};
	struct flow_key flow = {};
	struct backend *be, *pinned;
	__u32 zero = 0;
	__sum16 *check;

	if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (iph->protocol == IPPROTO_TCP) {
		if ((void *)(tcp + 1) > data_end)
			return XDP_PASS;
		check = &tcp->check;
	} else if (iph->protocol == IPPROTO_UDP) {
		check = &udp->check;
	} else {
		return XDP_PASS;
	}
	key.vip = iph->daddr;
	key.port = l4->dest;
	key.proto = iph->protocol;
	be = bpf_map_lookup_elem(&services, &key);
	if (!be)
		return XDP_PASS;
	flow.saddr = iph->saddr;
	flow.daddr = iph->daddr;
	flow.sport = l4->source;
	flow.dport = l4->dest;
	flow.proto = iph->protocol;
	pinned = bpf_map_lookup_elem(&flows, &flow);
	if (pinned)
		be = pinned;
	else
		bpf_map_update_elem(&flows, &flow, be, BPF_ANY);

	if (ask_fib) {
		fib.family = AF_INET;
		fib.l4_protocol = iph->protocol;
		fib.sport = l4->source;
		fib.dport = be->port;
		fib.tot_len = bpf_ntohs(iph->tot_len);
		fib.ipv4_src = iph->saddr;
		fib.ipv4_dst = be->ip;
		fib.ifindex = ctx->ingress_ifindex;
		if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
			return XDP_PASS;
	} else {
		struct nexthop *nh = bpf_map_lookup_elem(&nexthop, &zero);

		if (!nh || !nh->ifindex)
			return XDP_PASS;
		fib.ifindex = nh->ifindex;
		__builtin_memcpy(fib.smac, nh->smac, ETH_ALEN);
		__builtin_memcpy(fib.dmac, nh->dmac, ETH_ALEN);
	}

	iph->check = csum_update32(iph->check, iph->daddr, be->ip);
	if (*check || iph->protocol == IPPROTO_TCP) /* a UDP checksum of 0: none, stays 0 */
		*check = csum_update16(csum_update32(*check, iph->daddr, be->ip), l4->dest, be->port);
	iph->daddr = be->ip;
	l4->dest = be->port;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect(fib.ifindex, 0);
}

SEC("xdp")
int floor_dnat(struct xdp_md *ctx)
{
	return floor(ctx, 1);
}

SEC("xdp")
int floor_dnat_nexthop(struct xdp_md *ctx)
{
	return floor(ctx, 0);
}

SEC("xdp")
int floor_forward(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	__u32 zero = 0;
	struct nexthop *nh = bpf_map_lookup_elem(&nexthop, &zero);

	if ((void *)(eth + 1) > data_end || !nh || !nh->ifindex)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	return bpf_redirect(nh->ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
