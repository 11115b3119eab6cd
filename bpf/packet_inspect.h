/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by packet_inspect.bpf.c and its Python mirror (loaders/packet_inspect.py),
 * which is checked against this struct's BTF when the loader starts. */
#ifndef BPFLAB_PACKET_INSPECT_H
#define BPFLAB_PACKET_INSPECT_H

#include <linux/types.h>

struct inspect_event {
	__be32 saddr;
	__be32 daddr;
	__u8 protocol;
	__u8 pad[3]; /* explicit: no hidden compiler padding reaches user space */
};

#endif
