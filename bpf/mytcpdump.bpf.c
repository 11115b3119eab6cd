// SPDX-License-Identifier: GPL-2.0
/* mytcpdump: one ring-buffer event per IPv4 packet (addresses, TCP/UDP
 * ports, length, protocol). Every reserved slot is submitted on every path;
 * when the ring is full the packet is counted in mytcpdump_drops instead. */
#include "parsing_helpers.h"
#include "mytcpdump.h"
#include "btf_export.h"

BTF_EXPORT_STRUCT(packet_event);

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* the loader may resize it before load */
} mytcpdump_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} mytcpdump_drops SEC(".maps");

SEC("xdp")
int mytcpdump(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	struct packet_event *ev;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct tcphdr *tcp;
	struct udphdr *udp;
	__u32 zero = 0;
	__u64 *drops;
	int proto;

	if (parse_ethhdr(&nh, data_end, &eth) != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	proto = parse_iphdr(&nh, data_end, &iph);
	if (proto < 0)
		return XDP_PASS;

	ev = bpf_ringbuf_reserve(&mytcpdump_events, sizeof(*ev), 0);
	if (!ev) {
		drops = bpf_map_lookup_elem(&mytcpdump_drops, &zero);
		if (drops)
			__sync_fetch_and_add(drops, 1);
		return XDP_PASS;
	}
	ev->saddr = iph->saddr;
	ev->daddr = iph->daddr;
	ev->sport = 0;
	ev->dport = 0;
	ev->len = bpf_ntohs(iph->tot_len);
	ev->protocol = proto;
	ev->flags = ip_is_fragment(iph) ? MTD_F_FRAGMENT : 0;
	ev->pad[0] = 0;
	ev->pad[1] = 0;

	/* Later fragments carry no L4 header: no ports. */
	if (!ip_is_first_fragment(iph))
		goto submit;
	if (proto == IPPROTO_TCP) {
		if (parse_tcphdr(&nh, data_end, iph, &tcp) < 0) {
			ev->flags |= MTD_F_L4_TRUNCATED;
			goto submit;
		}
		ev->sport = tcp->source;
		ev->dport = tcp->dest;
		ev->flags |= MTD_F_PORTS;
	} else if (proto == IPPROTO_UDP) {
		if (parse_udphdr(&nh, data_end, iph, &udp) < 0) {
			ev->flags |= MTD_F_L4_TRUNCATED;
			goto submit;
		}
		ev->sport = udp->source;
		ev->dport = udp->dest;
		ev->flags |= MTD_F_PORTS;
	}
submit:
	bpf_ringbuf_submit(ev, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
