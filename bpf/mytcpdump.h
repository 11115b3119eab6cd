/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by mytcpdump.bpf.c and loaders/mytcpdump.py, whose ctypes mirror
 * is checked against this struct's BTF when the loader starts. */
#ifndef BPFLAB_MYTCPDUMP_H
#define BPFLAB_MYTCPDUMP_H

#include <linux/types.h>

/* Ports are valid only with MTD_F_PORTS. */
#define MTD_F_PORTS (1 << 0)        /* TCP/UDP header complete: sport/dport are real */
#define MTD_F_FRAGMENT (1 << 1)     /* an IP fragment (first or later) */
#define MTD_F_L4_TRUNCATED (1 << 2) /* TCP/UDP whose header is cut short or malformed */

struct packet_event {
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* 0 unless MTD_F_PORTS */
	__be16 dport;
	__u32 len;    /* IP total length */
	__u8 protocol;
	__u8 flags;   /* MTD_F_* */
	__u8 pad[2];  /* explicit: the record carries no uninitialised bytes */
};

#endif
