// SPDX-License-Identifier: GPL-2.0
/* Rule: copy packet fields to the stack and use that as the map key. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpflab/annotations.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} by_saddr SEC(".maps");

SEC("xdp")
__failure
__msg("invalid access to packet")
int packet_pointer_as_key(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u64 *count;

	count = bpf_map_lookup_elem(&by_saddr, &ip->saddr);
	if (count)
		*count += 1;
	return XDP_PASS;
}

SEC("xdp")
__success
int stack_copy_as_key(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u64 *count;
	__u32 key;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	key = ip->saddr;
	count = bpf_map_lookup_elem(&by_saddr, &key);
	if (count)
		*count += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
