// SPDX-License-Identifier: GPL-2.0
/* Rule: every packet access needs a bounds check against data_end first. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpflab/annotations.h>

SEC("xdp")
__failure
__msg("invalid access to packet")
/* Worded so up to 6.18; 7.2 and 7.3 say "min value is outside of the
 * allowed memory range" (6.19-7.1 not measured). */
__regex_kernel("<7.2", "R[0-9] offset is outside of the packet")
__regex_kernel(">=7.2", "R[0-9] min value is outside of the allowed memory range")
int no_bounds_check(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
__success
__retval(XDP_DROP) /* test-run's frame (pkt_v4) is IPv4 */
int bounds_checked(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
