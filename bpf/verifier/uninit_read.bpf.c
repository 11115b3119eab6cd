// SPDX-License-Identifier: GPL-2.0
/* Rule: a variable must be initialised on every path that reaches its use.
 * The verifier tracks it per register ("!read_ok"). Written in BPF assembly
 * because a C compiler is free to assume the uninitialised path away.
 * (Privileged programs on recent kernels may read uninitialised *stack*;
 * registers are still checked.) */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpflab/annotations.h>

SEC("xdp")
__failure
__regex("R3 !read_ok")
__attribute__((naked)) int read_before_init(void)
{
	asm volatile (
	"r2 = *(u32 *)(r1 + 16);"	/* ctx->rx_queue_index */
	"if r2 != 0 goto 1f;"
	"r3 = 2;"			/* XDP_PASS, set on one path only */
	"1:"
	"r0 = r3;"
	"exit;"
	::: "memory");
}

SEC("xdp")
__success
__attribute__((naked)) int initialised_at_declaration(void)
{
	asm volatile (
	"r3 = 1;"			/* XDP_DROP, set before the branch */
	"r2 = *(u32 *)(r1 + 16);"
	"if r2 != 0 goto 1f;"
	"r3 = 2;"
	"1:"
	"r0 = r3;"
	"exit;"
	::: "memory");
}

char LICENSE[] SEC("license") = "GPL";
