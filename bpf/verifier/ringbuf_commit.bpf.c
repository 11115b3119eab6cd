// SPDX-License-Identifier: GPL-2.0
/* Rule: a reserved ring-buffer slot must be submitted or discarded on
 * every path, or the ring would stall. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpflab/annotations.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ring SEC(".maps");

SEC("xdp")
__failure
/* Kernels before 6.x say "Unreleased reference id=N alloc_insn=M". */
__regex("Unreleased reference id=[0-9]+|BPF_EXIT instruction in main prog would lead to reference leak")
int reserve_then_leak(struct xdp_md *ctx)
{
	__u32 *slot = bpf_ringbuf_reserve(&ring, sizeof(*slot), 0);

	if (!slot)
		return XDP_PASS;
	if (ctx->rx_queue_index != 0)
		return XDP_PASS; /* leaves the slot neither submitted nor discarded */
	*slot = ctx->ingress_ifindex;
	bpf_ringbuf_submit(slot, 0);
	return XDP_PASS;
}

SEC("xdp")
__success
int reserve_then_commit(struct xdp_md *ctx)
{
	__u32 *slot = bpf_ringbuf_reserve(&ring, sizeof(*slot), 0);

	if (!slot)
		return XDP_PASS;
	if (ctx->rx_queue_index != 0) {
		bpf_ringbuf_discard(slot, 0);
		return XDP_PASS;
	}
	*slot = ctx->ingress_ifindex;
	bpf_ringbuf_submit(slot, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
