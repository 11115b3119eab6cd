// SPDX-License-Identifier: GPL-2.0
/* A BPF object with a map and a license but no program: nothing for the
 * verifier, which bpflab verifier stats must say instead of a table. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} unused SEC(".maps");

char LICENSE[] SEC("license") = "GPL";
