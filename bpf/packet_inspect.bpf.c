// SPDX-License-Identifier: GPL-2.0
/* packet_inspect: for every IPv4 packet, send source, destination and
 * protocol to user space through a ring buffer. Everything passes. */
#include "parsing_helpers.h"
#include "packet_inspect.h"
#include "btf_export.h"

BTF_EXPORT_STRUCT(inspect_event);

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} inspect_events SEC(".maps");

/* Events that found the ring full: user space reports them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} inspect_drops SEC(".maps");

SEC("xdp")
int packet_inspect(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	struct inspect_event *ev;
	struct ethhdr *eth;
	struct iphdr *iph;
	__u32 zero = 0;
	__u64 *drops;

	if (parse_ethhdr(&nh, data_end, &eth) != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (parse_iphdr(&nh, data_end, &iph) < 0)
		return XDP_PASS;

	ev = bpf_ringbuf_reserve(&inspect_events, sizeof(*ev), 0);
	if (!ev) {
		drops = bpf_map_lookup_elem(&inspect_drops, &zero);
		if (drops)
			*drops += 1;
		return XDP_PASS;
	}
	ev->saddr = iph->saddr;
	ev->daddr = iph->daddr;
	ev->protocol = iph->protocol;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	bpf_ringbuf_submit(ev, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
