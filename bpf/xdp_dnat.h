/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by xdp_dnat.bpf.c, the return-path program and loaders/xdp_dnat.py. */
#ifndef BPFLAB_XDP_DNAT_H
#define BPFLAB_XDP_DNAT_H

#include <linux/types.h>

/* The largest Maglev table (a prime; the paper's and Katran's size). A
 * service's table may be any prime up to this; the loader's default is
 * 16381, Cilium's. */
#define MAGLEV_MAX_SIZE 65537

/* A service: the VIP, port and protocol clients address. */
struct service_key {
	__be32 vip;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;   /* explicit and always zero: the map hashes every byte */
};

/* A backend slot (index of the backends array): one endpoint of one
 * service. ip 0 marks a free slot; weight 0 a draining endpoint (kept for
 * its flows, out of the table for new ones). */
struct backend {
	__be32 ip;
	__be16 port;
	__u16 weight;
	struct service_key service; /* the service the slot belongs to */
};

/* The most backends one table spreads over: an entry is a 16-bit index
 * into the table's own list of backend slots. */
#define MAGLEV_MAX_BACKENDS 65535

/* A service's Maglev lookup table: entry i holds the index, into slot[],
 * of the backend slot that flows hashing to i go to. Two bytes an entry
 * however many backend slots the instance has (slot numbers are 32-bit).
 * One element of a one-element array, swapped whole through the services
 * map-in-map, so a packet never sees half of a rebuild.
 *
 * As declared it has room for the largest table; a loader may make its
 * tables smaller (xdp_dnat.bpf.c's maglev_size and table_backends): then
 * slot[] starts right after entry[maglev_size], at table_slots_offset(). */
struct maglev_table {
	__u32 size;     /* a prime <= MAGLEV_MAX_SIZE; 0: no backend to choose */
	__u32 backends; /* how many backend slots the table spreads over */
	__u16 entry[MAGLEV_MAX_SIZE];
	__u32 slot[MAGLEV_MAX_BACKENDS];
};

/* Where slot[] starts in a table whose entry[] has room for `entries`. */
#define table_slots_offset(entries) ((8 + 2 * (entries) + 3) & ~3)

/* A backend slot's next hop, as the kernel's routing and neighbour tables
 * give it: kept by the loader from netlink events (loaders/nexthops.py),
 * so a packet needs no FIB lookup. */
struct backend_hop {
	__be32 ip;      /* the backend it was worked out for: another (a reused slot) is no answer */
	__u32 ifindex;  /* where packets to it leave */
	__u32 mtu;      /* the route's: a larger packet asks the FIB, which says so */
	__u8 smac[6];   /* that interface's address */
	__u8 dmac[6];   /* the backend's, or its gateway's */
};

/* backend_hop_live's value for a slot without a kept hop. */
#define HOP_NONE 0xFFFFFFFF

/* A connection in one direction, as its packets carry it. */
struct flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3]; /* always zero */
};

/* The instance's settings, written by the loader (one entry). */
struct dnat_config {
	__u32 service_ifindex; /* where clients reach the VIP: replies leave here */
	__u32 maglev_size;     /* tables' size, for `service` changes on a running instance */
	/* The BTF types of the tables' template, which a table made by another
	 * process must carry too (kernels compare them: see Map.create_inner). */
	__u32 table_btf_key_id;
	__u32 table_btf_value_id;
	__u32 table_backends; /* the backend slots each table has room for */
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
	DNAT_NO_BACKEND,     /* a service without a ready backend: dropped */
	DNAT_VERDICT_MAX,
};

#endif
