// SPDX-License-Identifier: GPL-2.0
/* Rule: no libc in BPF programs. A libc function is an unresolved extern:
 * libbpf refuses the object before the verifier ever sees it. The twin,
 * using a BPF helper instead, is libc_call_twin.bpf.c (this object cannot
 * be opened at all, so it cannot hold its own twin). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpflab/annotations.h>

extern int rand(void);

SEC("xdp")
__failure
__msg("failed to find BTF for extern 'rand'")
int calls_libc(struct xdp_md *ctx)
{
	return rand() & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
