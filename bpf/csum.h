/* SPDX-License-Identifier: GPL-2.0 */
/* Incremental Internet checksum updates, RFC 1624 equation 3:
 *
 *     HC' = ~(~HC + ~m + m')
 *
 * over 16-bit words in one's complement arithmetic. One's complement sums
 * do not depend on byte order, so fields are used as they are on the wire.
 * Equation 2 (HC' = HC - ~m - m') gets -0 wrong; equation 3 does not.
 * XDP has no bpf_l3/l4_csum_replace, so these are written out by hand.
 */
#ifndef BPFLAB_CSUM_H
#define BPFLAB_CSUM_H

#include <linux/types.h>

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* The checksum `check` after a 16-bit field changed from `from` to `to`. */
static __always_inline __u16 csum_update16(__u16 check, __u16 from, __u16 to)
{
	__u32 sum = (__u16)~check + (__u16)~from + (__u32)to;

	return (__u16)~csum_fold32(sum);
}

/* The checksum `check` after a 32-bit field (an IPv4 address) changed. */
static __always_inline __u16 csum_update32(__u16 check, __u32 from, __u32 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~(from >> 16) + (__u16)~(from & 0xffff);
	sum += (to >> 16) + (to & 0xffff);
	return (__u16)~csum_fold32(sum);
}

#endif
