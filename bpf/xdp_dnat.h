/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by xdp_dnat.bpf.c, the return-path program and loaders/xdp_dnat.py. */
#ifndef BPFLAB_XDP_DNAT_H
#define BPFLAB_XDP_DNAT_H

#include <linux/types.h>

/* A service: the VIP, port and protocol clients address. */
struct service_key {
	__be32 vip;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;   /* explicit and always zero: the map hashes every byte */
};

/* Where a service's traffic goes. */
struct backend {
	__be32 ip;
	__be16 port;
	__u8 pad[2];
};

/* The return path's settings, written by the loader (one entry). */
struct dnat_config {
	__u32 service_ifindex; /* where clients reach the VIP: replies leave here */
};

/* Per-verdict packet counters (indexes of the dnat_verdicts per-CPU array). */
enum dnat_verdict {
	DNAT_REWRITTEN = 0,  /* destination rewritten (then redirected or passed) */
	DNAT_REDIRECTED,     /* rewritten and sent out of the FIB's egress interface */
	DNAT_NOT_SERVICE,    /* not TCP/UDP to a configured service: passed untouched */
	DNAT_MALFORMED,      /* bad Ethernet/IP/L4 header: passed untouched */
	DNAT_FRAGMENT,       /* an IP fragment: passed untouched (see README) */
	DNAT_FIB_NO_NEIGH,   /* rewritten but no neighbour entry yet: passed to the stack so ARP resolves */
	DNAT_FIB_FAIL,       /* no usable route to the backend: passed untouched */
	DNAT_REPLY_REWRITTEN,/* return path: a backend's reply rewritten back to the VIP */
	DNAT_VERDICT_MAX,
};

#endif
