// SPDX-License-Identifier: GPL-2.0
/* Maps keyed and valued by IPv6 addresses, as a dual-stack Service map
 * would be: struct in6_addr and __be32[4] fields (tests/test_map_fill.py). */
#include <linux/bpf.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>

struct svc6_key {
	struct in6_addr vip;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct svc6_backend {
	__be32 addr[4];
	__be16 port;
	__u16 weight;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct svc6_key);
	__type(value, struct svc6_backend);
} svc6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct in6_addr);
	__type(value, __u32);
} allowed6 SEC(".maps");

SEC("xdp")
int maps6(struct xdp_md *ctx)
{
	struct svc6_key key = {};

	return bpf_map_lookup_elem(&svc6, &key) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
