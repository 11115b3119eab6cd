/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by connection_tracker.bpf.c and loaders/connection_tracker.py. */
#ifndef BPFLAB_CONNECTION_TRACKER_H
#define BPFLAB_CONNECTION_TRACKER_H

#include <linux/types.h>

/* The map hashes every byte of the key, padding included: the pad is
 * explicit and every key starts zeroed, or identical flows miss. */
struct conn_key {
	__be32 src_ip;
	__be32 dst_ip;
	__u8 proto;
	__u8 pad[3];
};

struct conn_value {
	__u64 packets;
	__u64 bytes; /* sum of IP tot_len */
};

/* Indexes of the conn_stats per-CPU array. */
enum conn_stat {
	CONN_STAT_TABLE_FULL = 0, /* packets of new flows that found the table full */
	CONN_STAT_INSERT_RACE,    /* first packets that lost the insert to another CPU (and were added to its entry) */
	CONN_STAT_MAX,
};

#endif
