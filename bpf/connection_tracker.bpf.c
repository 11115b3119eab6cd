// SPDX-License-Identifier: GPL-2.0
/* connection_tracker: packets and bytes per {src, dst, protocol}. */
#include "parsing_helpers.h"
#include "connection_tracker.h"

#define CONN_MAX_ENTRIES 65536
#define EEXIST 17

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CONN_MAX_ENTRIES);
	__type(key, struct conn_key);
	__type(value, struct conn_value);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CONN_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} conn_stats SEC(".maps");

static __always_inline void count_stat(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&conn_stats, &stat);

	if (n)
		*n += 1;
}

SEC("xdp")
int connection_tracker(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	struct conn_key key = {}; /* zeroed: padding included */
	struct conn_value *val, fresh = {};
	struct ethhdr *eth;
	struct iphdr *iph;
	long inserted;

	if (parse_ethhdr(&nh, data_end, &eth) != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (parse_iphdr(&nh, data_end, &iph) < 0)
		return XDP_PASS;

	/* Copied to the stack: a map key must never point into the packet. */
	key.src_ip = iph->saddr;
	key.dst_ip = iph->daddr;
	key.proto = iph->protocol;

	val = bpf_map_lookup_elem(&conns, &key);
	if (!val) {
		/* Insert an empty entry; if another CPU inserted it first, our
		 * BPF_NOEXIST fails harmlessly and we add into its entry. Either
		 * way look it up again: returning here would lose this packet
		 * (the original's bug). */
		inserted = bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST);
		val = bpf_map_lookup_elem(&conns, &key);
		if (!val) {
			count_stat(CONN_STAT_TABLE_FULL);
			return XDP_PASS;
		}
		if (inserted == -EEXIST)
			count_stat(CONN_STAT_INSERT_RACE);
	}
	__sync_fetch_and_add(&val->packets, 1);
	__sync_fetch_and_add(&val->bytes, bpf_ntohs(iph->tot_len));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
