// SPDX-License-Identifier: GPL-2.0
/* Traffic generator for BPF_PROG_TEST_RUN's live-frames mode: every run
 * writes the frame's headers afresh from a template (live-frame pages are
 * recycled without being re-initialised) and sends it out of the
 * configured interface. With `ports` set, every frame is a new connection:
 * its L4 source port steps through `ports` values from `first_port`, its
 * checksum fixed to match (so conntrack takes it as valid). */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define GEN_HEADER_BYTES 54 /* Ethernet + IPv4 + TCP (a UDP frame's first payload bytes) */
#define GEN_SPORT_OFFSET 34 /* Ethernet + IPv4 without options */
#define GEN_UDP_CSUM_OFFSET (GEN_SPORT_OFFSET + 6)
#define GEN_TCP_CSUM_OFFSET (GEN_SPORT_OFFSET + 16)

struct gen_config {
	__u32 ifindex;
	__u8 header[GEN_HEADER_BYTES];
	__u16 csum0;       /* the template's L4 checksum with source port 0 */
	__u16 first_port;
	__u32 ports;       /* 0: every frame is the template */
	__u32 sent;        /* frames made so far: the next port's index */
	__u8 udp;          /* else TCP; a zero UDP checksum means "none": 0xffff then */
	__u8 pad[5];
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
	__u32 zero = 0, sum;
	__u16 port, *csum;

	cfg = bpf_map_lookup_elem(&gen_config, &zero);
	if (!cfg || data + GEN_HEADER_BYTES > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, cfg->header, GEN_HEADER_BYTES);
	if (cfg->ports) {
		/* One thread runs the generator, on one CPU: a plain increment. */
		port = bpf_htons(cfg->first_port + cfg->sent++ % cfg->ports);
		*(__u16 *)(data + GEN_SPORT_OFFSET) = port;
		/* RFC 1624: the checksum of the template with port 0, plus the port. */
		sum = (__u16)~cfg->csum0 + (__u32)port;
		sum = (sum & 0xffff) + (sum >> 16);
		csum = data + (cfg->udp ? GEN_UDP_CSUM_OFFSET : GEN_TCP_CSUM_OFFSET);
		*csum = (__u16)~sum;
		if (cfg->udp && *csum == 0)
			*csum = 0xffff;
	}
	return bpf_redirect(cfg->ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
