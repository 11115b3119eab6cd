// SPDX-License-Identifier: GPL-2.0
/* Changes a byte without telling skb->csum (no BPF_F_RECOMPUTE_CSUM): the
 * checksum oracle must refuse it (tests/test_xdp_dnat_return.py). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc") int poke(struct __sk_buff *skb)
{
	__u8 byte = 0x5a;

	bpf_skb_store_bytes(skb, 40, &byte, 1, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
