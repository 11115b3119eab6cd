// SPDX-License-Identifier: GPL-2.0
/* A test object for the libbpf binding: one of each map kind the loaders
 * use, fed by an XDP program, so tests can check every binding operation
 * against values the kernel wrote. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct binding_key {
	__u32 len;
	__u8 tag;
	__u8 pad[3];
};

struct binding_value {
	__u64 packets;
	__u64 bytes;
};

struct binding_event {
	__u32 len;
	__u32 first_word;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct binding_key);
	__type(value, struct binding_value);
} by_len SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} percpu_packets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

/* Records the ring had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events_lost SEC(".maps");

SEC("xdp")
int binding_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct binding_key key = {};
	struct binding_value *val, init = {};
	struct binding_event *ev;
	__u32 zero = 0;
	__u64 *count;

	key.len = data_end - data;
	key.tag = 7;
	val = bpf_map_lookup_elem(&by_len, &key);
	if (!val) {
		bpf_map_update_elem(&by_len, &key, &init, BPF_NOEXIST);
		val = bpf_map_lookup_elem(&by_len, &key);
		if (!val)
			return XDP_ABORTED;
	}
	__sync_fetch_and_add(&val->packets, 1);
	__sync_fetch_and_add(&val->bytes, key.len);

	count = bpf_map_lookup_elem(&percpu_packets, &zero);
	if (count)
		*count += 1;

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (ev) {
		ev->len = key.len;
		ev->first_word = 0;
		if (data + 4 <= data_end)
			ev->first_word = *(__u32 *)data;
		/* Frames starting with 0xfe are discarded after their
		 * reservation, so readers meet a discarded record. */
		if (data + 1 <= data_end && *(__u8 *)data == 0xfe)
			bpf_ringbuf_discard(ev, 0);
		else
			bpf_ringbuf_submit(ev, 0);
	} else {
		count = bpf_map_lookup_elem(&events_lost, &zero);
		if (count)
			__sync_fetch_and_add(count, 1);
	}
	/* Frames starting with 0xff are dropped, so tests see both verdicts. */
	if (data + 1 <= data_end && *(__u8 *)data == 0xff)
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
