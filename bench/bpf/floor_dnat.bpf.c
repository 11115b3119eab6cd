// SPDX-License-Identifier: GPL-2.0
/* The floor of a DNAT in XDP: only what xdp_dnat cannot avoid for a packet
 * of an established flow to a service. Parse Ethernet, IPv4 and the L4
 * ports (no options, no VLAN, no fragments: the frame the bench sends has
 * none), one service lookup, one connection lookup (flows stay put: issue
 * 20) holding the backend itself, one bpf_fib_lookup, the address and port
 * writes with their checksum updates, the MACs, the redirect. No counters,
 * no checks a real datapath needs for other frames: xdp_dnat's cost is read
 * against this. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
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

SEC("xdp")
int floor_dnat(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(iph + 1);
	struct bpf_fib_lookup fib = {};
	struct service_key key = {};
	struct flow_key flow = {};
	struct backend *be, *pinned;

	/* TCP only, as the bench's frame: the one header length both need. */
	if ((void *)(tcp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || iph->protocol != IPPROTO_TCP)
		return XDP_PASS;
	key.vip = iph->daddr;
	key.port = tcp->dest;
	key.proto = IPPROTO_TCP;
	be = bpf_map_lookup_elem(&services, &key);
	if (!be)
		return XDP_PASS;
	flow.saddr = iph->saddr;
	flow.daddr = iph->daddr;
	flow.sport = tcp->source;
	flow.dport = tcp->dest;
	flow.proto = IPPROTO_TCP;
	pinned = bpf_map_lookup_elem(&flows, &flow);
	if (pinned)
		be = pinned;
	else
		bpf_map_update_elem(&flows, &flow, be, BPF_ANY);

	fib.family = AF_INET;
	fib.l4_protocol = IPPROTO_TCP;
	fib.sport = tcp->source;
	fib.dport = be->port;
	fib.tot_len = bpf_ntohs(iph->tot_len);
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = be->ip;
	fib.ifindex = ctx->ingress_ifindex;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;

	iph->check = csum_update32(iph->check, iph->daddr, be->ip);
	tcp->check = csum_update16(csum_update32(tcp->check, iph->daddr, be->ip), tcp->dest, be->port);
	iph->daddr = be->ip;
	tcp->dest = be->port;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect(fib.ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
