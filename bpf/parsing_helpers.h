/* SPDX-License-Identifier: GPL-2.0 */
/* One bounds-checked parser per header, shared by every program.
 *
 * In the style of xdp-tutorial's parsing_helpers.h: a cursor walks the
 * frame; each parse_* checks that its whole header lies inside the frame
 * (and inside the IP packet, for L4), advances the cursor and returns the
 * next protocol, or -1 when the frame is malformed. Callers pass malformed
 * frames on untouched (XDP_PASS).
 */
#ifndef BPFLAB_PARSING_HELPERS_H
#define BPFLAB_PARSING_HELPERS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef VLAN_MAX_DEPTH
#define VLAN_MAX_DEPTH 2
#endif

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

struct hdr_cursor {
	void *pos;
};

/* A big-endian 16-bit field as a host number the verifier knows is at most
 * 0xffff. Older verifiers (6.1) lose the bounds of a byte swap and of an OR
 * of two registers, and adding such an unbounded value to a packet pointer
 * is rejected ("math between pkt pointer and register with unbounded min
 * value"). A mask restores them, but clang drops a mask it can prove
 * redundant, so the empty asm hides what clang knows about the value. */
static __always_inline __u32 load_be16(const void *field)
{
	__u32 value = bpf_ntohs(*(const __be16 *)field);

	asm volatile("" : "+r"(value));
	return value & 0xffff;
}

/* linux/icmp.h drags in libc headers; the first 8 bytes are all we read. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest;
};

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

static __always_inline int proto_is_vlan(__u16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD);
}

/* Ethernet, then up to VLAN_MAX_DEPTH 802.1Q/802.1ad tags. Returns the
 * EtherType of what follows (network byte order) or -1. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end, struct ethhdr **ethhdr)
{
	struct ethhdr *eth = nh->pos;
	struct vlan_hdr *vlh;
	__u16 h_proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return -1;
	nh->pos = eth + 1;
	*ethhdr = eth;
	h_proto = eth->h_proto;
	vlh = nh->pos;
#pragma unroll
	for (i = 0; i < VLAN_MAX_DEPTH; i++) {
		if (!proto_is_vlan(h_proto))
			break;
		if ((void *)(vlh + 1) > data_end)
			return -1;
		h_proto = vlh->h_vlan_encapsulated_proto;
		vlh++;
	}
	if (proto_is_vlan(h_proto))
		return -1; /* deeper than we parse */
	nh->pos = vlh;
	return h_proto;
}

/* IPv4 with the header length validated: version 4, ihl >= 5, the whole
 * header inside the frame, ihl*4 <= tot_len, and tot_len not beyond the
 * packet's end (the kernel drops such packets too). `pkt_end` is where the
 * packet really ends: data_end in XDP; in tc it may lie beyond data_end,
 * since only the linear part of an skb is directly readable. Returns the
 * IP protocol. */
static __always_inline int parse_iphdr_upto(struct hdr_cursor *nh, void *data_end, void *pkt_end,
					    struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;
	__u32 hdrsize, tot_len;

	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4)
		return -1;
	hdrsize = iph->ihl * 4;
	if (hdrsize < sizeof(*iph))
		return -1;
	if (nh->pos + hdrsize > data_end)
		return -1;
	tot_len = load_be16(&iph->tot_len);
	if (tot_len < hdrsize)
		return -1;
	if (nh->pos + tot_len > pkt_end)
		return -1;
	nh->pos += hdrsize;
	*iphdr = iph;
	return iph->protocol;
}

static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end, struct iphdr **iphdr)
{
	return parse_iphdr_upto(nh, data_end, data_end, iphdr);
}

/* Only the first fragment (offset 0) carries the L4 header. */
static __always_inline int ip_is_first_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(IP_OFFSET)) == 0;
}

static __always_inline int ip_is_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
}

/* The end of the IP packet: L4 headers must lie before it, not in the
 * Ethernet padding that may follow. */
static __always_inline void *ip_end(const struct iphdr *iph)
{
	return (void *)iph + load_be16(&iph->tot_len);
}

/* TCP: doff >= 5 and the whole header (options included) inside the
 * packet. Returns the header length in bytes or -1. */
static __always_inline int parse_tcphdr(struct hdr_cursor *nh, void *data_end, const struct iphdr *iph,
					struct tcphdr **tcphdr)
{
	struct tcphdr *tcp = nh->pos;
	__u32 len;

	if ((void *)(tcp + 1) > data_end)
		return -1;
	len = tcp->doff * 4;
	if (len < sizeof(*tcp))
		return -1;
	/* The whole header, options included, inside tot_len: a header in
	 * the Ethernet padding after a short packet is not one. (doff may be
	 * read from the padding first; this check then rejects it.) */
	if (nh->pos + len > data_end || nh->pos + len > ip_end(iph))
		return -1;
	nh->pos += len;
	*tcphdr = tcp;
	return len;
}

/* UDP: the header inside the packet and its length field sane (the
 * datagram of a first fragment continues in later fragments, so there it
 * may exceed the packet). Returns the UDP length field or -1. */
static __always_inline int parse_udphdr(struct hdr_cursor *nh, void *data_end, const struct iphdr *iph,
					struct udphdr **udphdr)
{
	struct udphdr *udp = nh->pos;
	int len;

	/* Inside tot_len: for a first fragment the length check below is
	 * skipped, so this one keeps its header out of the padding. */
	if ((void *)(udp + 1) > data_end || (void *)(udp + 1) > ip_end(iph))
		return -1;
	len = load_be16(&udp->len);
	if (len < (int)sizeof(*udp))
		return -1;
	if (!ip_is_fragment(iph) && nh->pos + len > ip_end(iph))
		return -1;
	nh->pos = udp + 1;
	*udphdr = udp;
	return len;
}

static __always_inline int parse_icmphdr(struct hdr_cursor *nh, void *data_end, const struct iphdr *iph,
					 struct icmphdr **icmphdr)
{
	struct icmphdr *icmp = nh->pos;

	if ((void *)(icmp + 1) > data_end || (void *)(icmp + 1) > ip_end(iph))
		return -1;
	nh->pos = icmp + 1;
	*icmphdr = icmp;
	return icmp->type;
}

#endif /* BPFLAB_PARSING_HELPERS_H */
