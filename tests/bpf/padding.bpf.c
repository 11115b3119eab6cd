// SPDX-License-Identifier: GPL-2.0
/* The struct-padding rule, shown: the verifier accepts both programs, but
 * the map hashes every key byte, so a key whose padding holds leftovers
 * misses the entry that a zero-initialised key finds. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct padded_key {
	__u32 addr;
	__u8 proto;
	/* 3 bytes of implicit padding here */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, struct padded_key);
	__type(value, __u32);
} entries SEC(".maps");

static __always_inline int verdict(struct padded_key *key)
{
	return bpf_map_lookup_elem(&entries, key) ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int key_with_stale_padding(struct xdp_md *ctx)
{
	struct padded_key key;

	/* What an uninitialised stack slot holds: whatever was there before. */
	__builtin_memset(&key, 0xA5, sizeof(key));
	key.addr = 0x0a000001;
	key.proto = 6;
	return verdict(&key);
}

SEC("xdp")
int key_zero_initialised(struct xdp_md *ctx)
{
	struct padded_key key = {};

	key.addr = 0x0a000001;
	key.proto = 6;
	return verdict(&key);
}

char LICENSE[] SEC("license") = "GPL";
