// SPDX-License-Identifier: GPL-2.0
/* Rule: bpf_map_lookup_elem may return NULL; check before dereferencing. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpflab/annotations.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("xdp")
__failure
__regex("R[0-9] invalid mem access 'map_value_or_null'")
int no_null_check(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&counts, &key);

	*count += 1;
	return XDP_PASS;
}

SEC("xdp")
__success
__retval(XDP_PASS)
int null_checked(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&counts, &key);

	if (count)
		*count += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
