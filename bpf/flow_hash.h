/* SPDX-License-Identifier: GPL-2.0 */
/* The hash xdp_dnat picks a Maglev table entry with: Bob Jenkins' lookup3
 * "final" mix (public domain) over three words of the flow, as the kernel's
 * jhash_3words does. The words are the header fields read as the program
 * loads them (native byte order of the host), so user space reproduces the
 * hash from a packet's bytes: see tests/maglev_model.py. */
#ifndef BPFLAB_FLOW_HASH_H
#define BPFLAB_FLOW_HASH_H

#include <linux/types.h>

#define FLOW_HASH_INIT 0xdeadbeef

static __always_inline __u32 rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

static __always_inline __u32 flow_hash_3words(__u32 a, __u32 b, __u32 c, __u32 seed)
{
	a += FLOW_HASH_INIT + seed;
	b += FLOW_HASH_INIT + seed;
	c += FLOW_HASH_INIT + seed;
	c ^= b; c -= rol32(b, 14);
	a ^= c; a -= rol32(c, 11);
	b ^= a; b -= rol32(a, 25);
	c ^= b; c -= rol32(b, 16);
	a ^= c; a -= rol32(c, 4);
	b ^= a; b -= rol32(a, 14);
	c ^= b; c -= rol32(b, 24);
	return c;
}

#endif
