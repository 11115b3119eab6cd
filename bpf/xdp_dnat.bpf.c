// SPDX-License-Identifier: GPL-2.0
/* xdp_dnat: the kernel-side core of a Kubernetes Service.
 *
 * TCP/UDP packets to a service {VIP, port, protocol} get their destination
 * address and port rewritten to one of the service's backends, with the
 * IPv4 and TCP/UDP checksums updated incrementally. A new flow's backend
 * comes from the service's Maglev table (indexed by a hash of the 5-tuple);
 * the flow is then pinned to it in an LRU connection map, so a later table
 * change never moves it. The egress interface and both MAC addresses come
 * from the kernel's routing and neighbour tables (bpf_fib_lookup), never
 * from constants. Everything else passes untouched.
 */
#include "parsing_helpers.h"
#include "csum.h"
#include "flow_hash.h"
#include "btf_export.h"
#include "xdp_dnat.h"

#include <linux/pkt_cls.h>
#include <stddef.h>

#define AF_INET 2
#define MAX_SERVICES 1024
#define MAX_BACKENDS 4096
#define MAX_FLOWS 65536

/* Without it the tables' struct would be a forward declaration in BTF,
 * which libbpf cannot size. */
BTF_EXPORT_STRUCT(maglev_table);

/* The template of every service's table: one element, the whole table. */
struct maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct maglev_table);
};

/* service -> its Maglev table. User space builds a new table in a new
 * inner map and swaps it in with one update: a packet sees the old table
 * or the new one, never a mix. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, MAX_SERVICES);
	__type(key, struct service_key);
	__array(values, struct maglev_inner);
} services SEC(".maps");

/* Backend slots, indexed by the numbers the tables hold. Mappable: the
 * loader reads every slot on each change, a copy of mapped memory instead
 * of a system call's copy entry by entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

/* Packets sent to each backend slot. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, __u64);
} backend_packets SEC(".maps");

/* Each backend slot's next hop while the loader knows it (none: the FIB),
 * in arrays: a packet's lookup is an index, not a hash (about 30 ns of the
 * 190 an established packet cost as a hash, measured as bench/ablation.py
 * measures parts). An array's entry is written in place, so a packet could
 * read half of an update: each slot has two copies (backend_hops[2 * slot +
 * copy]) and backend_hop_live says which one packets read. The loader
 * writes the other copy, waits for an RCU grace period, then switches
 * (loaders/nexthops.py: HopTable), and writes that copy again only after
 * another grace period: no packet that could still read a copy ever sees
 * it change. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend_hop);
} backend_hops SEC(".maps");

/* backend slot -> the copy of its hop packets read: 0 or 1; anything else
 * (HOP_NONE, or a value read while the loader writes it) is no hop. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, __u32);
} backend_hop_live SEC(".maps");

/* client -> VIP flow -> its backend slot: established flows stay put. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_FLOWS);
	__type(key, struct flow_key);
	__type(value, __u32);
} dnat_flows SEC(".maps");

/* backend -> client flow -> the service the client addressed: the return
 * path is keyed by the connection, so one backend may serve many services. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_FLOWS);
	__type(key, struct flow_key);
	__type(value, struct service_key);
} dnat_replies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dnat_config);
} dnat_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DNAT_VERDICT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} dnat_verdicts SEC(".maps");

static __always_inline int count(__u32 verdict, int action)
{
	__u64 *n = bpf_map_lookup_elem(&dnat_verdicts, &verdict);

	if (n)
		*n += 1;
	return action;
}

/* Rewrite the destination address and port, fixing the IPv4 header
 * checksum and the L4 checksum (pseudo-header address + port). */
static __always_inline void rewrite_destination(struct iphdr *iph, __sum16 *l4_check, __be16 *l4_dport,
						const struct backend *be, int is_udp)
{
	__u16 check;

	iph->check = csum_update32(iph->check, iph->daddr, be->ip);
	/* UDP checksum 0 means "none": it stays 0. */
	if (!(is_udp && *l4_check == 0)) {
		check = csum_update32(*l4_check, iph->daddr, be->ip);
		check = csum_update16(check, *l4_dport, be->port);
		/* A UDP checksum that computes to 0 is sent as 0xFFFF. */
		if (is_udp && check == 0)
			check = 0xFFFF;
		*l4_check = check;
	}
	iph->daddr = be->ip;
	*l4_dport = be->port;
}

/* The backend slot `id` if it still belongs to `svc`: a slot freed (all
 * zeros) or reused by another service since a flow was pinned to it is no
 * answer. */
static __always_inline struct backend *live_backend(__u32 id, const struct service_key *svc)
{
	struct backend *be = bpf_map_lookup_elem(&backends, &id);

	if (!be || be->service.vip != svc->vip || be->service.port != svc->port ||
	    be->service.proto != svc->proto)
		return NULL;
	return be;
}

/* The copy of slot `id`'s next hop that packets read now, or NULL. */
static __always_inline struct backend_hop *kept_hop(__u32 id)
{
	__u32 *live = bpf_map_lookup_elem(&backend_hop_live, &id);
	__u32 copy;

	if (!live)
		return NULL;
	copy = *(volatile __u32 *)live; /* read once: the test and the index agree */
	if (copy > 1)
		return NULL;
	copy += 2 * id;
	return bpf_map_lookup_elem(&backend_hops, &copy);
}

/* The room every table of this instance has, set by the loader before
 * loading (--maglev-size, --max-service-backends) to what it makes the
 * tables' inner maps: a table then costs what its size needs, not the
 * 393 KiB of the declared struct. Constants to the verifier, which so
 * knows every read below stays inside the table. */
const volatile __u32 maglev_size = MAGLEV_MAX_SIZE;
const volatile __u32 table_backends = MAGLEV_MAX_BACKENDS;

/* A new flow's backend slot from the service's Maglev table, or -1. */
static __always_inline long maglev_pick(void *table_map, const struct flow_key *flow)
{
	struct maglev_table *table;
	__u32 zero = 0, i, index;
	__u32 *slot;

	table = bpf_map_lookup_elem(table_map, &zero);
	if (!table || !table->size)
		return -1;
	i = flow_hash_3words(flow->saddr, flow->daddr, ((__u32)flow->sport << 16) | flow->dport, flow->proto) %
	    table->size;
	if (i >= maglev_size || i >= MAGLEV_MAX_SIZE)
		return -1;
	index = table->entry[i];
	if (index >= table_backends || index >= MAGLEV_MAX_BACKENDS)
		return -1;
	slot = (void *)table + table_slots_offset(maglev_size);
	return slot[index];
}

SEC("xdp")
int xdp_dnat(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = { .pos = data };
	struct service_key key = {};
	struct flow_key flow = {}, reply = {};
	struct bpf_fib_lookup fib = {};
	struct backend_hop *hop;
	struct backend *be = NULL;
	struct service_key *replied_as;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct tcphdr *tcp;
	struct udphdr *udp;
	void *table_map;
	__sum16 *l4_check;
	__be16 *l4_dport;
	__be16 l4_sport;
	__u32 *pinned, id;
	__u64 *sent;
	long picked;
	int proto, rc, new_flow = 0;

	proto = parse_ethhdr(&nh, data_end, &eth);
	if (proto < 0)
		return count(DNAT_MALFORMED, XDP_PASS);
	/* Only untagged IPv4: a VLAN tag would not fit the egress interface. */
	if (proto != bpf_htons(ETH_P_IP) || nh.pos != (void *)(eth + 1))
		return count(DNAT_NOT_SERVICE, XDP_PASS);
	proto = parse_iphdr(&nh, data_end, &iph);
	if (proto < 0)
		return count(DNAT_MALFORMED, XDP_PASS);
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return count(DNAT_NOT_SERVICE, XDP_PASS);
	/* Later fragments have no ports, and rewriting only the first would
	 * send one datagram's fragments to two destinations. */
	if (ip_is_fragment(iph))
		return count(DNAT_FRAGMENT, XDP_PASS);

	if (proto == IPPROTO_TCP) {
		if (parse_tcphdr(&nh, data_end, iph, &tcp) < 0)
			return count(DNAT_MALFORMED, XDP_PASS);
		l4_check = &tcp->check;
		l4_dport = &tcp->dest;
		l4_sport = tcp->source;
	} else {
		if (parse_udphdr(&nh, data_end, iph, &udp) < 0)
			return count(DNAT_MALFORMED, XDP_PASS);
		l4_check = &udp->check;
		l4_dport = &udp->dest;
		l4_sport = udp->source;
	}

	/* Map keys live on the stack, zeroed, padding included. */
	key.vip = iph->daddr;
	key.port = *l4_dport;
	key.proto = proto;
	table_map = bpf_map_lookup_elem(&services, &key);
	if (!table_map)
		return count(DNAT_NOT_SERVICE, XDP_PASS);

	/* An established flow keeps its backend while the slot is live;
	 * a new one (or one whose backend was removed) asks the table. */
	flow.saddr = iph->saddr;
	flow.daddr = iph->daddr;
	flow.sport = l4_sport;
	flow.dport = *l4_dport;
	flow.proto = proto;
	pinned = bpf_map_lookup_elem(&dnat_flows, &flow);
	if (pinned) {
		id = *pinned;
		be = live_backend(id, &key);
	}
	if (!be) {
		picked = maglev_pick(table_map, &flow);
		if (picked < 0)
			return count(DNAT_NO_BACKEND, XDP_DROP);
		id = picked;
		be = live_backend(id, &key);
		if (!be)
			return count(DNAT_NO_BACKEND, XDP_DROP);
		new_flow = 1;
	}

	/* Route to the backend as the kernel would: as the loader last found
	 * it (kept from the kernel's own tables), else by asking the FIB. */
	hop = kept_hop(id);
	if (hop && hop->ip == be->ip && bpf_ntohs(iph->tot_len) <= hop->mtu) {
		fib.ifindex = hop->ifindex;
		__builtin_memcpy(fib.smac, hop->smac, ETH_ALEN);
		__builtin_memcpy(fib.dmac, hop->dmac, ETH_ALEN);
		rc = BPF_FIB_LKUP_RET_SUCCESS;
		goto routed;
	}
	fib.family = AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = proto;
	fib.sport = l4_sport;
	fib.dport = be->port;
	fib.tot_len = bpf_ntohs(iph->tot_len);
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = be->ip;
	fib.ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return count(DNAT_FIB_FAIL, XDP_PASS);
routed:

	/* Both directions of the connection, before the packet leaves: the
	 * backend's first reply must find its way back. The backend sees the
	 * same four-tuple for every service it serves, so a client port
	 * reused for another service of this backend takes the reply entry
	 * over; a pinned flow's packet takes it back when it finds it so. */
	reply.saddr = be->ip;
	reply.daddr = flow.saddr;
	reply.sport = be->port;
	reply.dport = flow.sport;
	reply.proto = proto;
	if (new_flow) {
		bpf_map_update_elem(&dnat_replies, &reply, &key, BPF_ANY);
		bpf_map_update_elem(&dnat_flows, &flow, &id, BPF_ANY);
	} else {
		replied_as = bpf_map_lookup_elem(&dnat_replies, &reply);
		if (!replied_as || replied_as->vip != key.vip || replied_as->port != key.port ||
		    replied_as->proto != key.proto)
			bpf_map_update_elem(&dnat_replies, &reply, &key, BPF_ANY);
	}
	rewrite_destination(iph, l4_check, l4_dport, be, proto == IPPROTO_UDP);
	sent = bpf_map_lookup_elem(&backend_packets, &id);
	if (sent)
		*sent += 1;
	count(DNAT_REWRITTEN, 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		/* The stack forwards the rewritten packet and resolves ARP;
		 * later packets find the neighbour and are redirected. */
		return count(DNAT_FIB_NO_NEIGH, XDP_PASS);

	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return count(DNAT_REDIRECTED, bpf_redirect(fib.ifindex, 0));
}

/* The return path, on the lb's backend-facing interfaces (tc ingress):
 * a reply of a connection the forward path opened gets the service's VIP
 * and port back as its source, and leaves through the interface clients reach the VIP on. The
 * kernel's checksum helpers handle partial (offloaded) checksums too. */
/* Enough for Ethernet, the largest IPv4 header and the largest TCP header. */
#define MAX_HEADERS (ETH_HLEN + 60 + 60)

SEC("tc")
int dnat_return(struct __sk_buff *skb)
{
	__u32 pull = skb->len < MAX_HEADERS ? skb->len : MAX_HEADERS;
	void *data_end, *data;
	struct hdr_cursor nh;
	struct flow_key key = {};
	struct service_key *svc;
	struct dnat_config *cfg;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct tcphdr *tcp;
	struct udphdr *udp;
	__u32 ip_off, check_off, sport_off, zero = 0;
	__be32 old_ip;
	__be16 old_port;
	__u64 l4_flags, port_store_flags = 0;
	int proto;

	/* Headers of a data segment may sit in paged data, beyond data_end. */
	if (bpf_skb_pull_data(skb, pull))
		return TC_ACT_OK;
	data_end = (void *)(long)skb->data_end;
	data = (void *)(long)skb->data;
	nh.pos = data;
	if (parse_ethhdr(&nh, data_end, &eth) != bpf_htons(ETH_P_IP) || nh.pos != (void *)(eth + 1))
		return TC_ACT_OK;
	proto = parse_iphdr_upto(&nh, data_end, data + skb->len, &iph);
	if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) || ip_is_fragment(iph))
		return TC_ACT_OK;
	ip_off = (void *)iph - data;
	if (proto == IPPROTO_TCP) {
		if (parse_tcphdr(&nh, data_end, iph, &tcp) < 0)
			return TC_ACT_OK;
		key.sport = tcp->source;
		key.dport = tcp->dest;
		sport_off = (void *)&tcp->source - data;
		check_off = (void *)&tcp->check - data;
		l4_flags = 0;
	} else {
		if (parse_udphdr(&nh, data_end, iph, &udp) < 0)
			return TC_ACT_OK;
		key.sport = udp->source;
		key.dport = udp->dest;
		sport_off = (void *)&udp->source - data;
		check_off = (void *)&udp->check - data;
		/* leave a "no checksum" 0 alone; a computed 0 becomes 0xFFFF */
		l4_flags = BPF_F_MARK_MANGLED_0;
		/* Without a checksum nothing balances the port change in the
		 * packet's sum: skb->csum (CHECKSUM_COMPLETE) must follow it. */
		if (!udp->check)
			port_store_flags = BPF_F_RECOMPUTE_CSUM;
	}
	key.saddr = iph->saddr;
	key.daddr = iph->daddr;
	key.proto = proto;
	/* Only replies of connections the forward path opened. */
	svc = bpf_map_lookup_elem(&dnat_replies, &key);
	if (!svc)
		return TC_ACT_OK;
	cfg = bpf_map_lookup_elem(&dnat_config, &zero);
	if (!cfg || !cfg->service_ifindex)
		return TC_ACT_OK;

	old_ip = key.saddr;
	old_port = key.sport;
	/* Helpers may move packet data: from here on only offsets are used. */
	if (bpf_l4_csum_replace(skb, check_off, old_ip, svc->vip, l4_flags | BPF_F_PSEUDO_HDR | 4) ||
	    bpf_l4_csum_replace(skb, check_off, old_port, svc->port, l4_flags | 2) ||
	    bpf_l3_csum_replace(skb, ip_off + offsetof(struct iphdr, check), old_ip, svc->vip, 4) ||
	    bpf_skb_store_bytes(skb, ip_off + offsetof(struct iphdr, saddr), &svc->vip, 4, 0) ||
	    bpf_skb_store_bytes(skb, sport_off, &svc->port, 2, port_store_flags))
		return TC_ACT_SHOT;
	count(DNAT_REPLY_REWRITTEN, 0);
	/* The kernel routes and resolves the client's MAC on that interface. */
	return bpf_redirect_neigh(cfg->service_ifindex, NULL, 0, 0);
}

char LICENSE[] SEC("license") = "GPL";
