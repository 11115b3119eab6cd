"""Mutation testing of bpf/, examples/, the bench's floor and bpflab's own
checks (the tool that calls other people's programs right or wrong): break
one rule at a time on purpose, rebuild, run the suite, and see it fail. A
mutation the suite survives is a real bug the suite would let through,
unless it is listed in EQUIVALENT with the reason it cannot change any
behaviour.

    nox -s mutants                       every mutation
    nox -s mutants -- -k csum            those whose id contains "csum"
    nox -s mutants -- --list             the mutations, not run

Each mutation is a text replacement that must occur exactly once in its
file. It is applied to a copy of bpf/, built with `make SRC=... BUILD=...`
into a copy of build/, and the suite runs against those objects
(BPFLAB_BUILD_DIR) with -x, the fastest exact tests first, bounded in time.
A mutation of a Python file (bpflab/, lab/, loaders/) is applied to a copy
of the package laid out as the wheel installs it, first on PYTHONPATH, and
its own tests run against it (the copy unmutated must pass them first).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bpflab.host import processes
from bpflab.host.paths import REPO_ROOT

# Fast, exact test-run tests first: most mutations die there in seconds.
FIRST = ["tests/test_xdp_dnat_return.py", "tests/test_xdp_dnat.py", "tests/test_xdp_dnat_balance.py", "tests/test_packet_counter.py",
         "tests/test_connection_tracker.py", "tests/test_packet_inspect.py", "tests/test_mytcpdump.py",
         "tests/test_xdp_dnat_checksums.py", "tests/test_fuzz.py", "tests/test_hello.py", "tests/test_xdp_dnat_lab.py",
         "tests/test_xdp_dnat_service.py", "tests/test_xdp_dnat_nexthops.py", "examples/xdp_pong/test_xdp_pong.py"]
RUN_TIMEOUT_S = 600


@dataclasses.dataclass(frozen=True)
class Mutation:
    id: str
    file: str  # under bpf/, or examples/NAME/NAME.bpf.c, bench/bpf/NAME.bpf.c, loaders/maglev.c, or a .py file of the package
    old: str
    new: str
    breaks: str  # the rule it breaks, for people
    tests: tuple[str, ...] = ()  # a Python mutation's own tests (the only ones run for it)

    @property
    def python(self) -> bool:
        return self.file.endswith(".py")


M = Mutation
STATE_TESTS = ("tests/test_tool_csum_states.py",)
ORACLE_TESTS = ("tests/test_checksums.py",)
IPV6_TESTS = ("tests/test_tool_csum_ipv6.py",)
PEERS_TESTS = "tests/test_bench_peers.py"  # the scale bench's generator and peers
INTERRUPT_TESTS = ("tests/test_interrupt_commands.py",)
GUARD_TESTS = ("tests/test_guard.py",)
STATS_TESTS = ("tests/test_verifier_stats.py", "tests/test_verifier_log.py")
# The corpus's tests that bring their own corpus (the others read bpf/verifier/ of the checkout).
CORPUS_TESTS = ("tests/test_verifier.py::test_a_program_that_must_load_and_return_a_value",
                "tests/test_verifier.py::test_retval_runs_on_the_selftests_pkt_v4")
MUTATIONS = [
    # hello
    M("hello-drops", "hello.bpf.c", "return XDP_PASS;", "return XDP_DROP;", "hello passes every frame"),
    M("hello-length", "hello.bpf.c", 'ifindex=%u", len,', 'ifindex=%u", len + 1,',
      "the trace line carries the frame's length"),
    # packet_inspect
    M("inspect-drops-uncounted", "packet_inspect.bpf.c", "			*drops += 1;", "			*drops += 0;",
      "a ring-full drop is counted"),
    M("inspect-src-is-dst", "packet_inspect.bpf.c", "ev->saddr = iph->saddr;", "ev->saddr = iph->daddr;",
      "the event carries the source address"),
    M("inspect-proto-is-ttl", "packet_inspect.bpf.c", "ev->protocol = iph->protocol;", "ev->protocol = iph->ttl;",
      "the event carries the protocol"),
    # packet_counter
    M("counter-by-tos", "packet_counter.bpf.c", "	proto = ret;", "	proto = iph->tos;", "packets are counted per protocol"),
    M("counter-double", "packet_counter.bpf.c", "		*count += 1;", "		*count += 2;", "one packet counts once"),
    # connection_tracker
    M("tracker-return-after-failed-insert", "connection_tracker.bpf.c",
      "		val = bpf_map_lookup_elem(&conns, &key);\n		if (!val) {",
      "		if (inserted)\n			return XDP_PASS;\n		val = bpf_map_lookup_elem(&conns, &key);\n		if (!val) {",
      "the CPU that loses the insert race adds into the winner's entry (the original's bug)"),
    M("tracker-failed-insert-is-full", "connection_tracker.bpf.c",
      "		val = bpf_map_lookup_elem(&conns, &key);\n		if (!val) {",
      "		if (inserted) {\n			count_stat(CONN_STAT_TABLE_FULL);\n			return XDP_PASS;\n		}\n"
      "		val = bpf_map_lookup_elem(&conns, &key);\n		if (!val) {",
      "a lost insert race is not a full table"),
    M("tracker-full-uncounted", "connection_tracker.bpf.c", "			count_stat(CONN_STAT_TABLE_FULL);\n", "",
      "packets that find the table full are counted"),
    M("tracker-no-proto", "connection_tracker.bpf.c", "	key.proto = iph->protocol;\n", "",
      "the key includes the protocol (the original forgot it)"),
    M("tracker-frame-bytes", "connection_tracker.bpf.c", "bpf_ntohs(iph->tot_len));", "(void *)(long)ctx->data_end - (void *)(long)ctx->data);",
      "bytes are the IP total length, not the frame's"),
    # mytcpdump
    M("dump-no-ports-flag", "mytcpdump.bpf.c", "		ev->dport = tcp->dest;\n		ev->flags |= MTD_F_PORTS;",
      "		ev->dport = tcp->dest;", "TCP events say their ports are real"),
    M("dump-sport-is-dport", "mytcpdump.bpf.c", "ev->sport = udp->source;", "ev->sport = udp->dest;",
      "the source port is the source port"),
    M("dump-first-fragment-no-ports", "mytcpdump.bpf.c", "	if (!ip_is_first_fragment(iph))", "	if (ip_is_fragment(iph))",
      "a first fragment carries its ports"),
    M("dump-drops-uncounted", "mytcpdump.bpf.c", "			__sync_fetch_and_add(drops, 1);", "			__sync_fetch_and_add(drops, 0);",
      "a ring-full drop is counted"),
    M("dump-len-is-frame", "mytcpdump.bpf.c", "	ev->len = bpf_ntohs(iph->tot_len);", "	ev->len = data_end - (void *)(long)ctx->data;",
      "len is the IP total length"),
    # the shared parsers
    M("parse-tcp-in-padding", "parsing_helpers.h",
      "	if (nh->pos + len > data_end || nh->pos + len > ip_end(iph))", "	if (nh->pos + len > data_end)",
      "a TCP header, options included, lies inside tot_len, not in the Ethernet padding"),
    M("parse-udp-in-padding", "parsing_helpers.h",
      "	if ((void *)(udp + 1) > data_end || (void *)(udp + 1) > ip_end(iph))", "	if ((void *)(udp + 1) > data_end)",
      "a UDP header lies inside tot_len"),
    M("parse-udp-length-unchecked", "parsing_helpers.h", "	if (!ip_is_fragment(iph) && nh->pos + len > ip_end(iph))",
      "	if (0)", "the UDP length fits the packet"),
    M("parse-ihl-below-5", "parsing_helpers.h", "	if (hdrsize < sizeof(*iph))\n		return -1;\n", "",
      "ihl is at least 5"),
    M("parse-tot-len-below-header", "parsing_helpers.h", "	if (tot_len < hdrsize)\n		return -1;\n", "",
      "tot_len covers the header"),
    M("parse-tot-len-beyond-frame", "parsing_helpers.h", "	if (nh->pos + tot_len > pkt_end)\n		return -1;\n", "",
      "tot_len does not run past the packet"),
    M("parse-one-vlan", "parsing_helpers.h", "#define VLAN_MAX_DEPTH 2", "#define VLAN_MAX_DEPTH 1",
      "two VLAN tags (802.1ad + 802.1Q) are parsed"),
    M("parse-fragment-mf-only", "parsing_helpers.h", "	return (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;",
      "	return (iph->frag_off & bpf_htons(IP_MF)) != 0;", "a last fragment (offset, no MF) is a fragment"),
    # the forward checksums (bpf/csum.h, RFC 1624 eqn 3 by hand)
    M("csum-fold-once", "csum.h", "	sum = (sum & 0xffff) + (sum >> 16);\n	sum = (sum & 0xffff) + (sum >> 16);\n",
      "	sum = (sum & 0xffff) + (sum >> 16);\n", "a sum that carries twice is folded twice"),
    M("csum-address-low-word", "csum.h", "	sum += (to >> 16) + (to & 0xffff);", "	sum += (to >> 16);",
      "both words of an address are in the update"),
    M("csum-no-complement", "csum.h", "	return (__u16)~csum_fold32(sum);\n}\n\n/* The checksum `check` after a 32-bit",
      "	return (__u16)csum_fold32(sum);\n}\n\n/* The checksum `check` after a 32-bit",
      "eqn 3 complements the sum"),
    M("fwd-ip-checksum-not-updated", "xdp_dnat.bpf.c", "	iph->check = csum_update32(iph->check, iph->daddr, be->ip);\n", "",
      "the IPv4 header checksum follows the address"),
    M("fwd-port-not-in-checksum", "xdp_dnat.bpf.c", "		check = csum_update16(check, *l4_dport, be->port);\n", "",
      "the L4 checksum follows the port"),
    M("fwd-udp-zero-updated", "xdp_dnat.bpf.c", "	if (!(is_udp && *l4_check == 0)) {", "	if (1) {",
      "UDP checksum 0 (none) stays 0"),
    M("fwd-udp-computed-zero-sent-as-zero", "xdp_dnat.bpf.c", "		if (is_udp && check == 0)\n			check = 0xFFFF;\n", "",
      "a UDP checksum that computes to 0 is sent as 0xFFFF"),
    M("fwd-tcp-zero-sent-as-ffff", "xdp_dnat.bpf.c", "		if (is_udp && check == 0)", "		if (check == 0)",
      "only UDP turns a computed 0 into 0xFFFF"),
    # xdp_dnat's decisions
    M("fwd-fragments-rewritten", "xdp_dnat.bpf.c", "	if (ip_is_fragment(iph))\n		return count(DNAT_FRAGMENT, XDP_PASS);\n", "",
      "fragments are never rewritten"),
    M("fwd-vlan-accepted", "xdp_dnat.bpf.c", "	if (proto != bpf_htons(ETH_P_IP) || nh.pos != (void *)(eth + 1))",
      "	if (proto != bpf_htons(ETH_P_IP))", "a VLAN-tagged frame is not rewritten"),
    M("fwd-no-neigh-is-failure", "xdp_dnat.bpf.c", "	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)",
      "	if (rc != BPF_FIB_LKUP_RET_SUCCESS)", "without a neighbour entry the stack resolves ARP"),
    M("fwd-macs-swapped", "xdp_dnat.bpf.c", "	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);",
      "	__builtin_memcpy(eth->h_dest, fib.smac, ETH_ALEN);", "the destination MAC is the next hop's"),
    M("fwd-redirect-uncounted", "xdp_dnat.bpf.c", "	return count(DNAT_REDIRECTED, bpf_redirect(fib.ifindex, 0));",
      "	return bpf_redirect(fib.ifindex, 0);", "redirected packets are counted"),
    # balancing: Maglev, pinned flows, connections
    M("balance-reply-not-taken-back", "xdp_dnat.bpf.c",
      "		    replied_as->proto != key.proto)\n			bpf_map_update_elem(&dnat_replies, &reply, &key, BPF_ANY);",
      "		    replied_as->proto != key.proto)\n			replied_as = NULL;",
      "a pinned flow takes back the reply entry a reused client port gave another service"),
    M("balance-table-bound-max-only", "xdp_dnat.bpf.c", "	if (i >= maglev_size || i >= MAGLEV_MAX_SIZE)",
      "	if (i >= MAGLEV_MAX_SIZE)", "a table read stays inside a table cut to --maglev-size slots"),
    M("balance-table-index-unbounded", "xdp_dnat.bpf.c", "	if (index >= table_backends || index >= MAGLEV_MAX_BACKENDS)",
      "	if (index >= MAGLEV_MAX_BACKENDS)", "a table's slot index stays inside a table cut to --max-service-backends"),
    M("balance-slots-at-declared-offset", "xdp_dnat.bpf.c", "	slot = (void *)table + table_slots_offset(maglev_size);",
      "	slot = table->slot;", "a cut table's slots start right after its entries"),
    M("balance-slots-16-bit", "loaders/service_table.py", 'slots = array.array("I", (slot for _, _, slot in ready))',
      'slots = array.array("H", (slot for _, _, slot in ready))', "backend slot numbers are 32-bit", ("tests/test_xdp_dnat_balance.py",)),
    M("room-service-backends-unchecked", "loaders/service_table.py", "            if ready > self.table_backends:",
      "            if False:", "a service with more backends than a table holds is refused",
      ("tests/test_xdp_dnat_balance.py", "tests/test_kube.py")),
    M("room-slots-unchecked", "loaders/service_table.py",
      "        if fresh and len(list(itertools.islice(slots.free(), fresh))) < fresh:", "        if False:",
      "backends past the free slots are refused before anything changes", ("tests/test_xdp_dnat_balance.py",)),
    M("room-services-unchecked", "loaders/service_table.py",
      "            if present + new > services_map.max_entries:", "            if False:",
      "services past --max-services are refused before anything changes", ("tests/test_xdp_dnat_balance.py",)),
    M("room-apply-deletes-first", "loaders/kube.py", "    table.check_table_room([s for s, _ in desired.services])\n", "",
      "apply refuses a too-large EndpointSlice before removing anything", ("tests/test_kube.py",)),
    M("maglev-native-ties-to-higher-rank", "loaders/maglev.c", "return x < y || (x == y && a->rank < b->rank);",
      "return x < y || (x == y && a->rank > b->rank);", "the compiled fill breaks ties as the model does"),
    M("maglev-native-offset-ignored", "loaders/maglev.c", "		at[r] = offset[r];", "		at[r] = 0;",
      "the compiled fill starts each backend's permutation at its offset"),
    M("maglev-native-step-one", "loaders/maglev.c", "*at = c + skip >= size ? c + skip - size : c + skip;",
      "*at = c + 1 >= size ? c + skip - skip : c + 1;", "the compiled fill steps each permutation by its skip"),
    M("balance-reused-slot-keeps-count", "loaders/service_table.py",
      "            nonzero = [i for i in fresh if any(counters.lookup(i) or ())]", "            nonzero = []",
      "a backend in a reused slot starts counting from zero", ("tests/test_xdp_dnat_balance.py",)),
    M("balance-slot-of-misaligned", "loaders/service_table.py", "            if rest == 0 and self.ips[i]:",
      "            if self.ips[i]:", "a service's slots are those whose service field holds its key",
      ("tests/test_xdp_dnat_balance.py", "tests/test_kube.py")),
    # next hops kept, not looked up per packet
    M("hops-ignored", "xdp_dnat.bpf.c", "	if (hop && hop->ip == be->ip && bpf_ntohs(iph->tot_len) <= hop->mtu) {",
      "	if (0) {", "a kept next hop is used without a FIB lookup"),
    M("hops-reused-slot-trusted", "xdp_dnat.bpf.c", "	if (hop && hop->ip == be->ip && bpf_ntohs(iph->tot_len) <= hop->mtu) {",
      "	if (hop && bpf_ntohs(iph->tot_len) <= hop->mtu) {", "a hop kept for a slot's earlier backend is no answer"),
    M("hops-mtu-ignored", "xdp_dnat.bpf.c", "	if (hop && hop->ip == be->ip && bpf_ntohs(iph->tot_len) <= hop->mtu) {",
      "	if (hop && hop->ip == be->ip) {", "a packet above the hop's MTU asks the FIB"),
    M("hops-neighbour-events-ignored", "loaders/nexthops.py",
      '                    redo |= through.get((message["ifindex"], message.get_attr("NDA_DST")), set())',
      "                    pass", "a neighbour that changes changes the hops through it", ("tests/test_xdp_dnat_nexthops.py",)),
    M("hops-route-events-ignored", "loaders/nexthops.py", "                    everything = True",
      "                    pass", "a route that changes changes every hop", ("tests/test_xdp_dnat_nexthops.py",)),
    M("hops-unresolved-neighbour-kept", "loaders/nexthops.py",
      "    lladdr, link = tables.neighbours.get((oif, via)), tables.links.get(oif)",
      '    lladdr, link = tables.neighbours.get((oif, via), "02:00:00:00:00:00"), tables.links.get(oif)',
      "a neighbour the kernel has not resolved gives no hop", ("tests/test_xdp_dnat_nexthops.py",)),
    M("hops-kept-after-the-keeper-failed", "loaders/nexthops.py", "                self.hops.clear()",
      "                pass", "a keeper that fails leaves no hop to go stale", ("tests/test_xdp_dnat_nexthops.py",)),
    M("hops-thread-takes-signals", "loaders/nexthops.py",
      "        signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))\n", "",
      "the keeper's thread leaves SIGINT and SIGTERM to the main thread", ("tests/test_xdp_dnat_nexthops.py",)),
    M("hops-live-copy-ignored", "xdp_dnat.bpf.c", "	copy += 2 * id;", "	copy = 2 * id;",
      "packets read the copy of a slot's hop the loader points them at"),
    M("hops-live-copy-written", "loaders/nexthops.py", "            spare = 1 if self.live.lookup(slot) == 0 else 0",
      "            spare = 0 if self.live.lookup(slot) == 0 else 1",
      "a hop changes in the copy no packet reads", ("tests/test_hop_table.py",)),
    M("hops-pointed-before-grace", "loaders/nexthops.py",
      "            self.grace()  # the copies whole everywhere before a packet is pointed at them", "            pass",
      "packets are pointed at a copy only once a grace period made it whole everywhere", ("tests/test_hop_table.py",)),
    M("hops-retired-copy-rewritten", "loaders/nexthops.py",
      "            if self._retired:  # a packet may still read a copy pointed away from", "            if False:",
      "a copy pointed away from is written again only after a grace period", ("tests/test_hop_table.py",)),
    M("hops-same-hop-rewritten", "loaders/nexthops.py",
      "                continue  # what packets read already (a neighbour confirmed, a route event elsewhere)",
      "                pass", "a hop that comes out the same costs no write and no grace period",
      ("tests/test_hop_table.py",)),
    M("interface-deletion-unnoticed", "loaders/base.py",
      "            return ifindex(self.iface, self.netns) != self.link.ifindex", "            return False",
      "a loader whose interface is deleted says so and exits 1",
      ("tests/test_robustness.py::test_the_interface_deleted_under_a_running_loader",)),
    M("guard-ignores-ini-timeout", "lab/pytest_guard.py",
      "configured = pytest_timeout.get_env_settings(config).timeout", 'configured = config.getoption("timeout", None)',
      "the session's own timeout (the ini's too) is the base the guard scales",
      ("tests/test_kernel_matrix.py::test_the_sessions_own_timeout_is_scaled_too[ini]",)),
    M("trace-wait-restarts-when-empty", "bpflab/host/tracefs.py", "                time.sleep(0.01)  # ready but empty: do not spin\n                continue",
      "                deadline = None if timeout is None else time.monotonic() + timeout\n                continue",
      "a trace wait ends after its silence even when the file keeps saying ready", ("tests/test_tracefs.py",)),
    M("balance-flows-not-pinned", "xdp_dnat.bpf.c", "	pinned = bpf_map_lookup_elem(&dnat_flows, &flow);",
      "	pinned = NULL;", "an established flow keeps its backend"),
    M("balance-flow-not-recorded", "xdp_dnat.bpf.c", "		bpf_map_update_elem(&dnat_flows, &flow, &id, BPF_ANY);\n", "",
      "a new flow is pinned to its backend"),
    M("balance-hash-no-proto", "flow_hash.h", "	a += FLOW_HASH_INIT + seed;", "	a += FLOW_HASH_INIT;",
      "the flow's hash is the model's (all of the 5-tuple)"),
    M("balance-hash-ports-swapped", "xdp_dnat.bpf.c", "((__u32)flow->sport << 16) | flow->dport",
      "((__u32)flow->dport << 16) | flow->sport", "the flow's hash is the model's"),
    M("balance-stale-slot-used", "xdp_dnat.bpf.c",
      "	if (!be || be->service.vip != svc->vip || be->service.port != svc->port ||\n"
      "	    be->service.proto != svc->proto)", "	if (!be)",
      "a flow pinned to a freed slot, or one another service now holds, picks again"),
    M("balance-slot-port-unchecked", "xdp_dnat.bpf.c", " || be->service.port != svc->port ||", " ||",
      "a slot of another service on the same VIP is not this service's"),
    M("balance-no-backend-passed", "xdp_dnat.bpf.c", "			return count(DNAT_NO_BACKEND, XDP_DROP);\n		id = picked;",
      "			return count(DNAT_NO_BACKEND, XDP_PASS);\n		id = picked;",
      "a service without a ready backend drops new flows"),
    M("balance-backend-uncounted", "xdp_dnat.bpf.c", "	if (sent)\n		*sent += 1;", "	if (sent)\n		*sent += 0;",
      "each backend's packets are counted"),
    M("balance-reply-not-recorded", "xdp_dnat.bpf.c",
      "	if (new_flow) {\n		bpf_map_update_elem(&dnat_replies, &reply, &key, BPF_ANY);\n", "	if (new_flow) {\n",
      "the connection's return entry is recorded before the packet leaves"),
    M("ret-keyed-without-client-port", "xdp_dnat.bpf.c", "		key.dport = tcp->dest;\n", "",
      "the return path is keyed by the whole connection"),
    # the return path's checksums (the kernel's helpers, used right)
    M("ret-no-pseudo-hdr", "xdp_dnat.bpf.c", "l4_flags | BPF_F_PSEUDO_HDR | 4", "l4_flags | 4",
      "the address is in the pseudo-header (partial and CHECKSUM_COMPLETE packets)"),
    M("ret-no-mangled-0", "xdp_dnat.bpf.c", "		l4_flags = BPF_F_MARK_MANGLED_0;", "		l4_flags = 0;",
      "UDP checksum 0 stays 0, a computed 0 becomes 0xFFFF"),
    M("ret-udp0-stale-skb-csum", "xdp_dnat.bpf.c", "			port_store_flags = BPF_F_RECOMPUTE_CSUM;",
      "			port_store_flags = 0;", "skb->csum follows a port change nothing else balances"),
    M("ret-ip-checksum-not-updated", "xdp_dnat.bpf.c",
      "	    bpf_l3_csum_replace(skb, ip_off + offsetof(struct iphdr, check), old_ip, svc->vip, 4) ||\n", "",
      "the IPv4 header checksum follows the address"),
    M("ret-port-not-in-checksum", "xdp_dnat.bpf.c", "bpf_l4_csum_replace(skb, check_off, old_port, svc->port,",
      "bpf_l4_csum_replace(skb, check_off, old_port, old_port,", "the L4 checksum follows the port"),
    M("ret-not-redirected", "xdp_dnat.bpf.c", "	return bpf_redirect_neigh(cfg->service_ifindex, NULL, 0, 0);",
      "	return TC_ACT_OK;", "replies leave through the clients' interface"),
    # examples/xdp_pong (its tests use only the public API)
    M("pong-minus-zero", "examples/xdp_pong/xdp_pong.bpf.c", "		if (zero_rest)\n			check = 0xffff;\n", "",
      "an all-zero echo message's checksum is 0xFFFF, not 0x0000"),
    M("pong-ttl-checksum-kept", "examples/xdp_pong/xdp_pong.bpf.c",
      "	iph->check = csum_replace(iph->check, old_word, new_word);",
      "	iph->check = csum_replace(iph->check, new_word, new_word);",
      "the IPv4 header checksum follows the TTL"),
    M("pong-any-address", "examples/xdp_pong/xdp_pong.bpf.c", "		return XDP_PASS;\n\n	/* type 8", "		{}\n\n	/* type 8",
      "only the listed addresses are answered"),
    # the bench's floor (xdp_dnat's figures are read against it: a floor that does less flatters xdp_dnat)
    M("floor-udp-checksum-kept", "bench/bpf/floor_dnat.bpf.c", "	if (*check || iph->protocol == IPPROTO_TCP)",
      "	if (iph->protocol == IPPROTO_TCP)", "the floor's UDP checksum follows the address and port"),
    M("floor-forward-dest-mac-kept", "bench/bpf/floor_dnat.bpf.c", "	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);\n",
      "", "the forward-only floor writes the next hop's MAC"),
    M("floor-port-not-written", "bench/bpf/floor_dnat.bpf.c", "	l4->dest = be->port;\n", "",
      "the floor writes the backend's port"),
    M("floor-source-mac-kept", "bench/bpf/floor_dnat.bpf.c", "		__builtin_memcpy(fib.smac, nh->smac, ETH_ALEN);\n", "",
      "the floor writes the next hop's source MAC"),
    # the loader's read of every backend slot
    M("slots-free-unaligned", "loaders/service_table.py", "            if rest == 0:\n                yield i\n",
      "            if True:\n                yield i\n", "a free slot is a whole zero slot, not a zero run across two",
      ("tests/test_slot_view.py",)),
    M("slots-map-not-mappable", "xdp_dnat.bpf.c", "	__uint(map_flags, BPF_F_MMAPABLE);\n", "",
      "the loader reads the backend slots mapped, not entry by entry"),
    # the scale bench's generator of new connections and kube-proxy's shapes (the peers' figures stand on them)
    M("gen-checksum-kept", "bench/bpf/gen.bpf.c", "		*csum = (__u16)~sum;\n", "",
      "a new connection's checksum follows its source port"),
    M("gen-port-kept", "bench/bpf/gen.bpf.c", "cfg->sent++ % cfg->ports", "cfg->sent % cfg->ports",
      "every generated frame is a new connection"),
    M("peers-iptables-no-pick", "bench/peers.py", 'pick = "" if k == n - 1 else', 'pick = "" if True else',
      "kube-proxy's iptables shape picks an endpoint at random", (PEERS_TESTS,)),
    M("peers-nft-one-endpoint", "bench/peers.py", "numgen random mod {len(s.backends)} vmap",
      "numgen random mod 1 vmap", "kube-proxy's nftables shape picks among every endpoint", (PEERS_TESTS,)),
    M("peers-measured-first", "bench/peers.py", "    half = len(others) // 2\n", "    half = 0\n",
      "the measured service sits half-way down the iptables walk", (PEERS_TESTS,)),
    # bpflab's own checks: `bpflab csum` and `run` in every checksum state of a tc program
    M("tool-partial-skipped", "bpflab/tool/csum.py", '        if state == "partial" and as_partial(case.frame) is None:',
      '        if state == "partial":', "frames a stack sends partial are run in the partial state", STATE_TESTS),
    M("tool-complete-left-out", "bpflab/tool/states.py", "    return tuple(s for s in STATES if s not in why), why",
      '    return tuple(s for s in STATES if s not in why and s != "complete"), why',
      "every state this machine can run is run by default", STATE_TESTS),
    M("tool-ebadmsg-is-success", "bpflab/tool/target.py",
      '                    return Outcome("REFUSED", b"", state, refused="EBADMSG")',
      "                    return Outcome(\"TC_ACT_OK\", frame, state)", "a frame the kernel refused is not right",
      STATE_TESTS),
    M("tool-refusal-ignored", "bpflab/tool/judge.py", "    if outcome.refused:", "    if False:",
      "the judge reads a refusal as a failure", STATE_TESTS),
    M("tool-partial-field-full", "bpflab/tool/states.py", "    return frame[:field] + struct.pack(\"!H\", pseudo) + frame[field + 2:], start, where",
      "    return frame, start, where", "a partial frame's field holds the pseudo-header sum, as a stack leaves it",
      STATE_TESTS),
    M("tool-kernel-counters-ignored", "bpflab/tool/judge.py", "    for counter, n in arrival.kernel_errors.items():",
      "    for counter, n in {}.items():", "a frame the receiving kernel dropped for its checksum is a failure",
      STATE_TESTS),
    M("tool-partial-oracle-complete", "bpflab/tool/judge.py", "verify_rewrite(sent, data, partial=partial, udp6_zero_ports=udp6_zero_ports)",
      "verify_rewrite(sent, data, udp6_zero_ports=udp6_zero_ports)", "a frame seen still partial is judged by its pseudo-header sum",
      STATE_TESTS),
    M("tool-nothing-arrived-unchanged", "bpflab/tool/judge.py", "    if not arrival.at_middle:", "    if False:",
      "a frame that never reached the middle is not called unchanged", STATE_TESTS + ("tests/test_tool_run.py",)),
    # the oracle itself, for IPv6 (tests/test_checksums.py holds it to scapy)
    M("oracle-v6-header-destination", "lab/headers.py", "            dst, routed = (final, True) if final else (dst, routed)",
      "            routed = routed",
      "the pseudo-header names the final destination of a routing header", ORACLE_TESTS),
    M("oracle-icmpv6-no-pseudo-header", "lab/checksums.py", "    if proto == ICMP:\n", "    if proto in (ICMP, 58):\n",
      "ICMPv6 is summed over its pseudo-header", ORACLE_TESTS),
    M("oracle-v6-length-with-extensions", "lab/checksums.py", "    pseudo = pseudo_header_sum(net.src, net.dst, proto, len(l4))",
      "    pseudo = pseudo_header_sum(net.src, net.dst, proto, net.end - net.offset - (40 if net.family == 6 else 0))",
      "the pseudo-header's length is the upper layer's, not the payload's with its extension headers", ORACLE_TESTS),
    M("oracle-udp6-zero-accepted", "lab/checksums.py", "        if net.family == 4:\n            return Finding(name, True, 0, 0,",
      "        if True:\n            return Finding(name, True, 0, 0,", "UDP 0 over IPv6 is wrong but for a declared tunnel",
      ORACLE_TESTS),
    M("oracle-extensions-skipped-blindly", "lab/headers.py", "        size = (frame[pos + 1] + 2) * 4 if nh == AUTH else (frame[pos + 1] + 1) * 8",
      "        size = 8", "an extension header is as long as its length field says", ORACLE_TESTS),
    M("oracle-first-fragment-judged", "lab/headers.py", "            if word & 1:\n", "            if False:\n",
      "a first fragment's checksum covers the whole datagram: it cannot be judged", ORACLE_TESTS),
    M("oracle-tunnel-not-entered", "lab/headers.py", "    if found.proto in (IPIP, IPV6):", "    if False:",
      "the inner packet of a tunnel is judged too", ORACLE_TESTS),
    # nothing unchecked called right: run, csum, the judge, the lab's rule
    M("tool-run-unchecked-exits-0", "bpflab/tool/cli.py",
      "    return EXIT_BAD_CHECKSUM if bad else EXIT_UNCHECKED if unchecked else 0",
      "    return EXIT_BAD_CHECKSUM if bad else 0", "a run with frames it could not judge does not exit 0",
      IPV6_TESTS),
    M("tool-csum-unchecked-exits-0", "bpflab/tool/cli.py", "    if report.unchecked:\n        return EXIT_UNCHECKED",
      "    if False:\n        return EXIT_UNCHECKED", "a csum run with frames it could not judge does not exit 0",
      IPV6_TESTS),
    M("tool-gap-called-checked", "bpflab/tool/judge.py", "    return Judgement(outcome.state, True, verdict.complete,",
      "    return Judgement(outcome.state, True, True,", "a frame with something unjudged is not called checked",
      IPV6_TESTS),
    M("lab-rule-unchecked-ignored", "lab/builder.py", "if verdict.problems or (unchecked and not verdict.complete):",
      "if verdict.problems:", "the lab's checksum rule fails a test for a frame it could not judge",
      ("tests/test_lab_ipv6.py",)),
    M("tool-ipv6-never-aimed", "bpflab/tool/edges.py",
      "        return tuple(f for f in self.families if self.of(f, self.destinations) and self.of(f, self.sources))",
      "        return tuple(f for f in self.families if f == 4 and self.of(f, self.destinations))",
      "IPv6 frames are aimed at as IPv4 ones are", IPV6_TESTS),
    M("tool-named-targets-dropped", "bpflab/tool/csum.py", "    pool = dataclasses.replace(pool, targets=tuple(dict.fromkeys(named + found)))",
      "    pool = dataclasses.replace(pool, targets=found)", "targets named by hand are aimed at", IPV6_TESTS),
    # an interrupted command: one line, 130/143, nothing left (bpflab.host.interrupts)
    M("interrupt-swallowed", "bpflab/host/interrupts.py", "        return 128 + signum\n", "        return 0\n",
      "an interrupted command does not exit 0", INTERRUPT_TESTS),
    M("interrupt-read-as-finding", "bpflab/host/interrupts.py", "        return 128 + signum\n", "        return 1\n",
      "an interrupted command never exits with a finding's status", INTERRUPT_TESTS),
    M("interrupt-sigterm-kills-without-cleanup", "bpflab/host/interrupts.py",
      "    interrupt_on(signal.SIGTERM, signal.SIGINT)\n    _state.commanding",
      "    interrupt_on(signal.SIGINT)\n    _state.commanding", "SIGTERM unwinds a command as Ctrl-C does",
      INTERRUPT_TESTS),
    M("interrupt-ignored-signal-taken", "bpflab/host/interrupts.py",
      "        if current == signal.SIG_IGN:\n            continue", "        if False:\n            continue",
      "a signal ignored when the command started stays ignored", INTERRUPT_TESTS),
    M("interrupt-lab-removal-unsaid", "lab/builder.py",
      '            cleaned(f"removed the {self.topology.name} lab ({self.prefix})")', "            pass",
      "the interrupt's line says what the cleanup removed", INTERRUPT_TESTS),
    M("interrupt-teardown-cut-short", "lab/builder.py", "        with deferred():  # a signal must not leave half a lab",
      "        with contextlib.nullcontext():", "a signal during a lab's teardown does not leave half a lab",
      INTERRUPT_TESTS),
    M("interrupt-vms-left-running", "kernels/matrix.py", "        for version, proc in list(RUNNING.items()):\n            stop_vm(proc)\n",
      "        for version, proc in list(RUNNING.items()):\n            pass\n",
      "an interrupted bpflab kernels stops its VMs and qemu", INTERRUPT_TESTS),
    # the session guard: opt-in, and catching what it names
    M("guard-leftovers-unreported", "lab/pytest_guard.py",
      '    problems += [str(left) for left in found if left.kind != "owner lock"]', "    problems += []",
      "a session that leaves a namespace, a pin directory or a process fails", GUARD_TESTS),
    M("guard-namespace-unwatched", "lab/pytest_guard.py",
      "    problems = [f\"root namespace {line}\" for line in snapshot.differences(before, snapshot.take())] if before else []",
      "    problems = []", "a session that changes the namespace it started in fails", GUARD_TESTS),
    M("guard-imposed", "lab/pytest_plugin.py", "LABS = pytest.StashKey[list]()",
      "from bpflab.lab.pytest_guard import *  # noqa\nLABS = pytest.StashKey[list]()",
      "installing bpflab imposes nothing on a project that does not ask for its guard", GUARD_TESTS),
    # bpflab verifier stats: veristat's numbers, a baseline, other kernels
    M("stats-states-swapped", "bpflab/tool/stats.py",
      '(("insns", "max_states_per_insn", "total_states", "peak_states", "mark_read")',
      '(("insns", "max_states_per_insn", "peak_states", "total_states", "mark_read")',
      "each number is the verifier's own, as veristat reads it", STATS_TESTS),
    M("stats-stack-first-subprog-only", "bpflab/tool/stats.py",
      '        found["stack_depth"] = sum(map(int, subprogs))', '        found["stack_depth"] = int(subprogs[0]) + 0 * len(subprogs)',
      "the stack of every subprogram counts (7.3's lines)", STATS_TESTS),
    M("stats-xlated-in-bytes", "bpflab/tool/stats.py", "xlated_insns=info.xlated_prog_len // 8",
      "xlated_insns=info.xlated_prog_len", "xlated_insns counts instructions, as bpftool's bytes / 8", STATS_TESTS),
    M("stats-growth-unlimited", "bpflab/tool/stats_compare.py", "and percent(old, new) > self.max_growth:",
      "and percent(old, new) > self.max_growth * 100:", "growth beyond --max-growth fails the compare", STATS_TESTS),
    M("stats-peak-states-not-limited", "bpflab/tool/stats_compare.py",
      'GROWTH_LIMITED = ("insns", "peak_states")', 'GROWTH_LIMITED = ("insns",)',
      "peak states that grew beyond --max-growth fail the compare too", STATS_TESTS),
    M("stats-rejected-now-passes", "bpflab/tool/stats_compare.py",
      '        return not self.broken() and not self.grown()', '        return not self.grown()',
      "a program that loaded and is rejected now fails the compare", STATS_TESTS),
    M("stats-matched-by-path", "bpflab/tool/stats.py",
      '        return ProgramStats(path.name, program, "loaded",', '        return ProgramStats(str(path), program, "loaded",',
      "programs are matched by object file name, wherever it was built", STATS_TESTS),
    M("stats-unopenable-is-bad-input", "bpflab/tool/stats.py", "        if is_bpf_elf(path):", "        if False:",
      "a BPF object libbpf cannot open is a rejected row, not unusable input", STATS_TESTS),
    M("stats-kernel-error-passes", "bpflab/tool/stats_command.py",
      "    return EXIT_REGRESSED if regressed or any(r.error for r in runs) else 0",
      "    return EXIT_REGRESSED if regressed else 0", "a kernel that gave no statistics fails the run", STATS_TESTS),
    M("stats-collected-dropped", "kernels/matrix.py", '                        setattr(boot, "junit_xml" if what == "junit" else "collected", data)',
      '                        setattr(boot, "junit_xml" if what == "junit" else "console", data)',
      "what a VM's command wrote comes back from it", STATS_TESTS),
    M("corpus-retval-unchecked", "bpflab/tool/verifier.py", "            elif outcome.retval != case.retval:",
      "            elif False:", "a __retval program that returns another value is not as annotated", CORPUS_TESTS),
    M("corpus-pkt-v4-version-4", "bpflab/tool/verifier.py", '          + b"\\x05\\x00" + (123).to_bytes(2, "big")',
      '          + b"\\x45\\x00" + (123).to_bytes(2, "big")', "__retval runs on the selftests' pkt_v4, byte for byte",
      CORPUS_TESTS),
    M("tool-udp-checksum-drop-allowed", "lab/checksums.py",
      "    if udp_in is None or udp_out is None or udp_out[0] != 0:\n        return verdict",
      "    if True:\n        return verdict", "a UDP checksum the input carried must not become 0",
      ("tests/test_checksums.py", *STATE_TESTS)),
]

# Mutations no test can kill because they change no behaviour, with why.
EQUIVALENT: dict[str, str] = {}


FLOOR_TESTS = "tests/test_bench_floor.py"
NATIVE_MAGLEV, MAGLEV_TESTS = "loaders/maglev.c", "tests/test_maglev.py"  # the compiled table fill, and its tests


# Where each of the package's directories is installed (pyproject.toml's package-dir).
INSTALLED_AS = {"bpflab": "bpflab", "lab": "bpflab/lab", "loaders": "bpflab/loaders", "bench": "bpflab/bench",
                "kernels": "bpflab/kernels"}


def source(mutation: Mutation, root: Path = REPO_ROOT) -> Path:
    if mutation.python:
        return root / mutation.file
    return root / mutation.file if mutation.file.startswith(("examples/", "bench/", "loaders/")) else root / "bpf" / mutation.file


def package_copy(pkg: Path) -> None:
    """The package as the wheel lays it out, from this checkout, under `pkg`."""
    shutil.copytree(REPO_ROOT / "bpflab", pkg / "bpflab", ignore=shutil.ignore_patterns("__pycache__"))
    for directory, installed in INSTALLED_AS.items():
        if directory != "bpflab":
            shutil.copytree(REPO_ROOT / directory, pkg / installed, ignore=shutil.ignore_patterns("__pycache__"))


def in_package_copy(mutation: Mutation, pkg: Path) -> Path:
    top, _, rest = mutation.file.partition("/")
    return pkg / INSTALLED_AS[top] / rest


def own_tests(mutation: Mutation) -> list[str]:
    """The tests to run first: an example's own, or the bench floor's."""
    path = Path(mutation.file)
    if mutation.file.startswith("examples/"):
        return [str(path.parent / f"test_{path.name.removesuffix('.bpf.c')}.py")]
    if mutation.file == NATIVE_MAGLEV:
        return [MAGLEV_TESTS]
    if mutation.file == "bench/bpf/gen.bpf.c":
        return [PEERS_TESTS]
    return [FLOOR_TESTS] if mutation.file.startswith("bench/") else []


def mutated(mutation: Mutation, text: str) -> str:
    if text.count(mutation.old) != 1:
        raise SystemExit(f"mutation {mutation.id}: its text occurs {text.count(mutation.old)} times in "
                         f"{mutation.file}, not once: update tests/mutants.py")
    return text.replace(mutation.old, mutation.new)


def apply(mutation: Mutation, work: Path) -> None:
    path = source(mutation, work)
    path.write_text(mutated(mutation, path.read_text()))


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    return ""


def run_python(mutation: Mutation, work: Path, pytest_args: list[str]) -> dict:
    """A mutation of the package: its own tests against a mutated copy, after
    the same copy unmutated passed them (else the copy, not the mutation,
    would be what fails)."""
    shutil.rmtree(work, ignore_errors=True)
    pkg = work / "pkg"
    package_copy(pkg)
    # Run from the work directory: from the checkout, its own bpflab/ (first on sys.path) would shadow the copy.
    env = {**os.environ, "PYTHONPATH": f"{pkg}:{REPO_ROOT}", "PYTHONDONTWRITEBYTECODE": "1",
           "BPFLAB_BUILD_DIR": os.environ.get("BPFLAB_BUILD_DIR", str(REPO_ROOT / "build"))}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-n", "0", "--rootdir", str(REPO_ROOT),
               *pytest_args, *(str(REPO_ROOT / test) for test in mutation.tests)]
    started = time.monotonic()
    clean = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
    if clean.returncode != 0:
        return {"id": mutation.id, "result": "invalid", "seconds": round(time.monotonic() - started, 1),
                "detail": "its tests fail on the unmutated copy: " + (first_failure(clean.stdout) or clean.stdout[-200:])}
    path = in_package_copy(mutation, pkg)
    path.write_text(mutated(mutation, path.read_text()))
    try:
        run = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
        output, code = run.stdout + run.stderr, run.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = str(exc.stdout or ""), -1
    seconds = round(time.monotonic() - started, 1)
    if code == 0:
        return {"id": mutation.id, "result": "survived", "detail": "", "seconds": seconds}
    detail = first_failure(output) or ("timed out" if code == -1 else f"pytest exit {code}")
    return {"id": mutation.id, "result": "killed", "detail": detail, "seconds": seconds}


def run_one(mutation: Mutation, work: Path, pytest_args: list[str]) -> dict:
    if mutation.python:
        return run_python(mutation, work, pytest_args)
    src, examples, bench, build = work / "bpf", work / "examples", work / "bench" / "bpf", work / "build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "bpf", src)  # copy2 keeps times: make rebuilds what the mutation touches
    shutil.copytree(REPO_ROOT / "examples", examples)
    shutil.copytree(REPO_ROOT / "bench" / "bpf", bench)
    shutil.copytree(REPO_ROOT / "build", build)
    (work / "loaders").mkdir()
    shutil.copy2(REPO_ROOT / NATIVE_MAGLEV, work / NATIVE_MAGLEV)
    apply(mutation, work)
    started = time.monotonic()
    made = subprocess.run(["make", "-s", f"SRC={src}", f"BUILD={build}", f"EXAMPLES={examples}", f"BENCH_SRC={bench}",
                           f"NATIVE_SRC={work / NATIVE_MAGLEV}"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    if made.returncode != 0:
        return {"id": mutation.id, "result": "invalid", "detail": (made.stderr.strip().splitlines() or ["?"])[-1],
                "seconds": round(time.monotonic() - started, 1)}
    own = own_tests(mutation)
    tests = own + [t for t in FIRST if t not in own] + sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "tests").glob("test_*.py")
                           if str(p.relative_to(REPO_ROOT)) not in FIRST)
    try:
        # Serial: with xdist, -x lets each worker finish its queue first.
        run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-n", "0",
                              *pytest_args, *tests], cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                             env={**os.environ, "BPFLAB_BUILD_DIR": str(build),
                                  "XDP_PONG_OBJ": str(build / "examples/xdp_pong.bpf.o")})
        output, code = run.stdout + run.stderr, run.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = str(exc.stdout or ""), -1
    seconds = round(time.monotonic() - started, 1)
    if code == 0:
        return {"id": mutation.id, "result": "survived", "detail": "", "seconds": seconds}
    detail = first_failure(output) or ("timed out" if code == -1 else f"pytest exit {code}")
    return {"id": mutation.id, "result": "killed", "detail": detail, "seconds": seconds}


def reap_orphans() -> list[str]:
    """Kill and reap every living child of this process (the harness, a
    subreaper, has waited for each process it started itself: what is left
    was orphaned by a mutant's run), then their orphans in turn. Returns
    their command lines."""
    killed: list[str] = []
    for _ in range(10):  # a tree of orphans comes down a generation a round
        pids = processes.children(os.getpid())
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                killed.append(" ".join(cmdline.split())[:120] or "(a process that had already exited)")
        processes.kill_all(pids)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    return killed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nox -s mutants --", description=__doc__.split("\n\n")[0])
    p.add_argument("-k", dest="keyword", help="only mutations whose id contains this")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args, pytest_args = p.parse_known_args(argv)
    chosen = [m for m in MUTATIONS if not args.keyword or args.keyword in m.id]
    if args.list:
        for m in chosen:
            mutated(m, source(m).read_text())  # each applies cleanly, or this says which does not
            print(f"{m.id:<38} {str(source(m).relative_to(REPO_ROOT)):<36} {m.breaks}")
        return 0
    if not chosen:
        p.error(f"no mutation id contains {args.keyword!r}")
    results = []
    processes.become_subreaper()
    with tempfile.TemporaryDirectory(prefix="bpflab-mutants-") as tmp:
        for i, mutation in enumerate(chosen, 1):
            print(f"[{i}/{len(chosen)}] {mutation.id}: {mutation.breaks} ...", flush=True)
            result = run_one(mutation, Path(tmp) / "work", pytest_args)
            note = f" ({EQUIVALENT[mutation.id]})" if result["result"] == "survived" and mutation.id in EQUIVALENT else ""
            print(f"    {result['result'].upper()} in {result['seconds']} s {result['detail']}{note}", flush=True)
            for left in reap_orphans():
                print(f"    left running by its run, killed: {left}", flush=True)
            results.append(result)
    killed = sum(r["result"] == "killed" for r in results)
    survived = [r["id"] for r in results if r["result"] == "survived"]
    invalid = [r["id"] for r in results if r["result"] == "invalid"]
    unexplained = [m for m in survived if m not in EQUIVALENT]
    rate = killed / len(results)
    print(f"\nmutants: {killed} killed, {len(survived)} survived ({len(survived) - len(unexplained)} explained as "
          f"equivalent), {len(invalid)} invalid, of {len(results)}: kill rate {100 * rate:.1f} %")
    for mid in unexplained:
        print(f"  SURVIVED, unexplained: {mid}: a test should fail for it, or EQUIVALENT must say why it cannot")
    for mid in invalid:
        print(f"  INVALID (does not build, or its own tests fail without it): {mid}: fix the mutation")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "kill_rate": rate}, indent=2))
    return 0 if rate >= 0.95 and not unexplained and not invalid else 1


if __name__ == "__main__":
    sys.exit(main())
