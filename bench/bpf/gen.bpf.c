// SPDX-License-Identifier: GPL-2.0
/* Traffic generator for BPF_PROG_TEST_RUN's live-frames mode: every run
 * writes the frame's headers afresh from a template (live-frame pages are
 * recycled without being re-initialised) and sends it out of the
 * configured interface. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define GEN_HEADER_BYTES 42 /* Ethernet + IPv4 + UDP */

struct gen_config {
	__u32 ifindex;
	__u8 header[GEN_HEADER_BYTES];
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} gen_config SEC(".maps");

SEC("xdp")
int gen(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct gen_config *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&gen_config, &zero);
	if (!cfg || data + GEN_HEADER_BYTES > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, cfg->header, GEN_HEADER_BYTES);
	return bpf_redirect(cfg->ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
