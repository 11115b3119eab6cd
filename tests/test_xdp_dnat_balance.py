"""xdp_dnat balancing a service over several backends, through test-run in
the dnat lab's routing tables (lb's eth1 knows four backends' MACs):

- a new flow goes to the backend the independent model picks (the Maglev
  table of tests/maglev_model.py, indexed by its lookup3 hash of the
  5-tuple): exact for every flow, so the program's hash and table are the
  model's;
- the flow is pinned: adding a backend or rebuilding the table never moves
  it; removing a backend ends only that backend's flows (their connection
  entries are deleted, their next packet picks again); a draining backend
  keeps its flows and gets no new one;
- every backend's packets and replies carry exact checksums (property
  test, both directions through the same object's connection map).
"""
import collections
import ctypes
import dataclasses
import functools
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP

from bpflab.lab import dnat, packets
from bpflab.lab.checksums import verify_frame
from bpflab.lab.topology import BACKEND_IP, VIP, Neighbour
from bpflab.libbpf import BpfError
from bpflab.libbpf.maps import BPF_F_MMAPABLE
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.service_table import DnatConfig
from bpflab.loaders.services import Backend, BackendSlot, RoomError, Service, SpecError, service_key
from tests import maglev_model
from tests.xdp_dnat_frames import (
    BACKEND_MAC,
    CLIENT_IP,
    CLIENT_MAC,
    LB_IN_MAC,
    LB_OUT_MAC,
    TC_ACT_REDIRECT,
    client_frame,
    dnat_runner,
    flow_key,
    replied,
    rewritten,
    verdict_delta,
)

pytestmark = pytest.mark.kernel

MACS = {BACKEND_IP: BACKEND_MAC, "10.244.1.77": "02:00:00:00:03:4d", "10.244.1.250": "02:00:00:00:03:fa",
        "10.244.1.100": "02:00:00:00:03:64"}
THREE = tuple(Backend(ip, 8080) for ip in list(MACS)[:3])
FOURTH = Backend("10.244.1.100", 8080)
WEB = Service(VIP, 80, "tcp", THREE)
DNS = Service(VIP, 53, "udp", tuple(Backend(b.ip, 5353) for b in THREE))
SIZE = 1021  # a prime the model builds quickly; the program takes any (test_default_size_table uses 16381)
SERVICE_IFINDEX = 7  # where replies would leave (bpf_redirect_neigh only records it in test-run)


@pytest.fixture(scope="module")
def lab(module_lab_factory):
    topo = dnat()
    extra = tuple(Neighbour("lb", "eth1", ip, mac) for ip, mac in MACS.items() if ip != BACKEND_IP)
    return module_lab_factory(dataclasses.replace(topo, neighbours=topo.neighbours + extra))


@pytest.fixture
def runner(lab):
    with dnat_runner(lab, services=(), maglev_size=SIZE) as r:
        r.obj.map("dnat_config").bind(ctypes.c_uint32, DnatConfig).update(0, DnatConfig(SERVICE_IFINDEX, SIZE))
        yield r


def l4_of(service: Service, sport: int, dport: int, flags: str = "S"):
    return UDP(sport=sport, dport=dport) if service.proto == "udp" else TCP(sport=sport, dport=dport, flags=flags)


def segment(service: Service, src: str, dst: str, sport: int, dport: int, payload: bytes, *, flags: str = "S",
            no_udp_checksum: bool = False) -> tuple[int, bytes]:
    """(IP protocol, the TCP or UDP segment of `service`'s protocol), as bytes."""
    if service.proto == "udp":
        return packets.UDP, packets.udp(src, dst, sport, dport, payload, no_checksum=no_udp_checksum)
    return packets.TCP, packets.tcp(src, dst, sport, dport, payload, flags=flags, window=8192)


def flow(sport: int, service: Service = WEB, client: str = CLIENT_IP, payload: bytes = b"",
         no_udp_checksum: bool = False) -> bytes:
    """A client's packet of a new flow to `service` (a SYN for TCP), built
    as bytes: thousands per test, scapy's cost under emulation was most
    of the file's time (test_flow_frames_are_what_scapy_builds keeps them
    equal to scapy's)."""
    proto, l4 = segment(service, client, service.vip, sport, service.port, payload, no_udp_checksum=no_udp_checksum)
    return packets.ether(LB_IN_MAC, CLIENT_MAC) + packets.ipv4(client, service.vip, proto, l4, ident=1)


def test_flow_frames_are_what_scapy_builds():
    for service, payload in ((WEB, b""), (DNS, b"q"), (WEB, b"data")):
        pkt = client_frame(l4_of(service, 40000, service.port), dst=service.vip, payload=payload)
        pkt[IP].src = "10.0.1.9"
        assert flow(40000, service, client="10.0.1.9", payload=payload) == bytes(pkt)


@functools.cache
def _model_table(backends: tuple[tuple[str, int], ...], size: int) -> list[str]:
    return maglev_model.table(list(backends), size)


def model_table(service: Service, size: int = SIZE) -> list[str]:
    return _model_table(tuple((b.name, b.weight) for b in service.backends if b.weight), size)


def endpoint(service: Service, name: str) -> Backend:
    return next(b for b in service.backends if b.name == name)


def sent_to(frame: bytes, service: Service, backend: Backend) -> bytes:
    one = Service.to(service.vip, service.port, service.proto, backend.ip, backend.port)
    return rewritten(frame, one, dmac=MACS[backend.ip])


def addressed(data: bytes, backends) -> list[Backend]:
    """The backends whose address and port an IPv4 frame is sent to."""
    l4 = 14 + (data[14] & 0xF) * 4
    dst, dport = socket.inet_ntoa(data[30:34]), int.from_bytes(data[l4 + 2:l4 + 4], "big")
    return [b for b in backends if (b.ip, b.port) == (dst, dport)]


def run_flows(runner, frames, service: Service) -> dict[bytes, str]:
    """Run each frame; return which backend (name) each went to, checking
    the bytes against the model's rewrite to that backend."""
    went = {}
    for frame in frames:
        result = runner.run(frame)
        assert result.action == "XDP_REDIRECT", result.action
        # The model's rewrite is built (scapy: the slow part, a minute per
        # test in an emulated VM) only for the backend the output names.
        backend = next((b for b in addressed(result.data, service.backends) if result.data == sent_to(frame, service, b)),
                       None)
        assert backend is not None, "the output is no exact rewrite to any backend of the service"
        went[frame] = backend.name
    return went


def test_new_flows_go_where_the_model_says(runner):
    runner.table.put(WEB)
    frames = [flow(sport) for sport in range(20000, 20300)]
    before = runner.verdicts()
    went = run_flows(runner, frames, WEB)
    table = model_table(WEB)
    assert went == {f: maglev_model.pick(f, table) for f in frames}
    assert set(went.values()) == {b.name for b in THREE}  # every backend got some
    assert verdict_delta(before, runner.verdicts()) == {"rewritten": 300, "redirected": 300}
    # Per-backend counters, and both directions of every connection recorded.
    (state,) = runner.table.states()
    assert {b.backend.name: b.packets for b in state.backends} == collections.Counter(went.values())
    flows = runner.table.maps.flows
    slots = {b.slot: b.backend.name for b in state.backends}
    assert len(list(flows.keys())) == 300 and len(list(runner.table.maps.replies.keys())) == 300
    for key in flows.keys():
        assert (key.dport, key.proto) == (0x5000, 6)  # port 80, network order, read natively
    assert collections.Counter(slots[s] for _, s in flows.items()) == collections.Counter(went.values())


def test_the_default_size_table(runner):
    service = Service(VIP, 80, "tcp", THREE[:2] + (Backend(THREE[2].ip, 8080, 3),))
    runner.table.maglev_size = 16381
    runner.table.put(service)
    assert runner.table.table(VIP, 80, "tcp")[0] == 16381
    frames = [flow(sport) for sport in range(21000, 21100)]
    table = model_table(service, 16381)
    assert run_flows(runner, frames, service) == {f: maglev_model.pick(f, table) for f in frames}


def test_an_established_flow_keeps_its_backend_when_a_backend_is_added(runner):
    runner.table.put(WEB)
    frames = [flow(sport) for sport in range(22000, 22200)]
    first = run_flows(runner, frames, WEB)
    bigger = runner.table.add_backend(VIP, 80, "tcp", FOURTH)
    new_table = model_table(bigger)
    would_move = [f for f in frames if maglev_model.pick(f, new_table) != first[f]]
    assert len(would_move) > 20  # the new table does send some of them elsewhere...
    assert run_flows(runner, frames, bigger) == first  # ...but established flows stay put
    fresh = [flow(sport) for sport in range(23000, 23200)]
    went = run_flows(runner, fresh, bigger)
    assert went == {f: maglev_model.pick(f, new_table) for f in fresh}
    assert FOURTH.name in went.values()


def test_removing_a_backend_ends_only_its_own_flows(runner):
    runner.table.put(WEB)
    frames = [flow(sport) for sport in range(24000, 24300)]
    first = run_flows(runner, frames, WEB)
    gone = THREE[1]
    smaller = runner.table.delete_backend(VIP, 80, "tcp", gone.ip, gone.port)
    # Its connection entries went with it, in both directions; the others stayed.
    flows = list(runner.table.maps.flows.items())
    assert len(flows) == sum(1 for b in first.values() if b != gone.name)
    replies = list(runner.table.maps.replies.keys())
    assert len(replies) == len(flows)
    assert all(r.saddr != ip_be32(gone.ip) for r in replies)
    new_table = model_table(smaller)
    again = run_flows(runner, frames, WEB)
    for f in frames:
        if first[f] == gone.name:
            assert again[f] == maglev_model.pick(f, new_table)  # picked again by the new table
        else:
            assert again[f] == first[f]  # untouched, whatever the new table says


def test_a_flow_pinned_to_a_freed_slot_picks_again(runner):
    """Between a backend's slot being freed and its flows being deleted, a
    packet may still find its flow: the program must not send it to the
    dead slot (nor to a slot another service holds by then)."""
    other = Service(VIP, 8000, "tcp", (THREE[0],))  # same VIP and protocol, another port
    runner.table.put(WEB)
    runner.table.put(other)
    web_frame = flow(30000)
    run_flows(runner, [web_frame], WEB)
    states = {s.service.port: s for s in runner.table.states()}
    free = max(b.slot for s in states.values() for b in s.backends) + 1
    for pinned_to in (free, states[8000].backends[0].slot):
        runner.table.maps.flows.update(flow_key(web_frame), pinned_to)
        assert run_flows(runner, [web_frame], WEB)[web_frame] == maglev_model.pick(web_frame, model_table(WEB))
        assert runner.table.maps.flows.lookup(flow_key(web_frame)) != pinned_to  # pinned anew


def test_a_draining_backend_keeps_its_flows_and_gets_no_new_ones(runner):
    runner.table.put(WEB)
    frames = [flow(sport) for sport in range(25000, 25200)]
    first = run_flows(runner, frames, WEB)
    draining = THREE[0]
    drained = Service(VIP, 80, "tcp", (dataclasses.replace(draining, weight=0),) + THREE[1:])
    runner.table.put(drained)
    assert run_flows(runner, frames, WEB) == first
    fresh = [flow(sport) for sport in range(26000, 26200)]
    went = run_flows(runner, fresh, WEB)
    assert draining.name not in went.values()
    assert went == {f: maglev_model.pick(f, model_table(drained)) for f in fresh}


def test_with_every_backend_draining_new_flows_are_dropped_and_old_ones_kept(runner):
    runner.table.put(WEB)
    old = flow(27000)
    (first,) = run_flows(runner, [old], WEB).values()
    runner.table.put(Service(VIP, 80, "tcp", tuple(dataclasses.replace(b, weight=0) for b in THREE)))
    assert runner.table.states()[0].table_size == 0
    before = runner.verdicts()
    new = flow(27001)
    result = runner.run(new)
    assert (result.action, result.data) == ("XDP_DROP", new)
    assert verdict_delta(before, runner.verdicts()) == {"no_backend": 1}
    assert run_flows(runner, [old], WEB) == {old: first}


def test_replies_of_every_backend_come_back_from_the_vip(runner):
    runner.table.put(WEB)
    runner.table.put(DNS)
    for service in (WEB, DNS):
        frames = [flow(sport, service) for sport in range(28000, 28060)]
        went = run_flows(runner, frames, service)
        assert len(set(went.values())) == 3
        for frame, name in went.items():
            assert_reply(runner, frame, service, endpoint(service, name))


def test_one_backend_serves_two_services(runner):
    """The return path is keyed by the connection: a backend of two
    services answers each client from the VIP that client addressed."""
    other = Service("10.96.0.11", 8000, "tcp", (THREE[0],))
    runner.table.put(Service(VIP, 80, "tcp", (THREE[0],)))
    runner.table.put(other)
    for service, sport in ((WEB, 29000), (other, 29001)):
        frame = flow(sport, service)
        result = runner.run(frame)
        assert result.data == sent_to(frame, service, THREE[0])
        assert_reply(runner, frame, service, THREE[0])


def assert_reply(runner, frame: bytes, service: Service, backend: Backend) -> None:
    """The backend's reply to `frame`'s client, through dnat_return of the
    same object: it comes from the VIP, with exact checksums."""
    client, sport = socket.inet_ntoa(frame[26:30]), int.from_bytes(frame[34:36], "big")
    proto, l4 = segment(service, backend.ip, client, backend.port, sport, b"answer", flags="SA")
    reply = packets.ether(LB_OUT_MAC, BACKEND_MAC) + packets.ipv4(backend.ip, client, proto, l4)
    result = runner.obj.program("dnat_return").test_run(reply)
    want = replied(reply, service)
    assert (result.retval, result.data) == (TC_ACT_REDIRECT, want)
    assert verify_frame(want).ok


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(client=st.integers(2, 250), sport=st.integers(1, 65535), udp=st.booleans(),
       payload=st.binary(max_size=64), zero_udp_checksum=st.booleans())
def test_checksums_are_exact_for_every_backend_both_ways(runner, client, sport, udp, payload, zero_udp_checksum):
    """Issue 20's point 4: the forward and return rewrites, with a service
    of three backends, exact against the model for whichever backend the
    flow gets."""
    service = DNS if udp else WEB
    if not hasattr(runner, "services_set"):  # once: hypothesis runs every example on this runner
        runner.table.put(WEB)
        runner.table.put(DNS)
        runner.services_set = True
    frame = flow(sport, service, client=f"10.0.1.{client}", payload=payload, no_udp_checksum=udp and zero_udp_checksum)
    name = maglev_model.pick(frame, model_table(service))
    pinned = runner.table.maps.flows.lookup(flow_key(frame))
    if pinned is not None:  # hypothesis repeated a flow: it keeps what it got
        ip = runner.table.maps.backends.lookup(pinned).ip
        name = next(b.name for b in service.backends if ip_be32(b.ip) == ip)
    backend = endpoint(service, name)
    result = runner.run(frame)
    want = sent_to(frame, service, backend)
    assert (result.action, result.data) == ("XDP_REDIRECT", want)
    assert verify_frame(want).ok
    assert_reply(runner, frame, service, backend)


def test_a_rebuild_never_writes_a_table_packets_may_be_reading(runner):
    """Tables are swapped whole: every change publishes a new inner map with
    one update of `services`; the table published before is never written
    again (a program that looked it up keeps reading a whole table)."""
    from bpflab.libbpf import Map
    from bpflab.loaders.services import MaglevTable, service_key

    runner.table.put(WEB)
    old_id = runner.table.maps.services.lookup(service_key(VIP, 80, "tcp"))
    with Map.from_id(old_id) as old:  # as a program that looked it up holds it
        old.bind(ctypes.c_uint32, MaglevTable)
        before = bytes(old.lookup(0))
        runner.table.add_backend(VIP, 80, "tcp", FOURTH)
        runner.table.delete_backend(VIP, 80, "tcp", THREE[0].ip, THREE[0].port)
        new_id = runner.table.maps.services.lookup(service_key(VIP, 80, "tcp"))
        assert new_id != old_id
        assert bytes(old.lookup(0)) == before  # untouched
    size, slots = runner.table.table(VIP, 80, "tcp")
    assert size == SIZE and len(set(slots)) == 3


def snapshot(runner) -> tuple:
    """The services and every backend slot's bytes: what a refused change must leave as it was."""
    return runner.table.services(), [(i, bytes(slot)) for i, slot in runner.table.maps.backends.items()]


def test_many_services_change_in_one_swap_and_what_does_not_fit_is_refused_with_nothing_changed(lab):
    """put_many swaps every service's table in with one update of the
    services map; a change the map has no room for is refused, before
    anything changes, in one line naming the limit and its flag."""
    with dnat_runner(lab, services=(), maglev_size=SIZE, max_services=3) as runner:
        runner.table.put_many([WEB, DNS])
        for service in (WEB, DNS):
            frames = [flow(sport, service) for sport in range(21000, 21040)]
            assert run_flows(runner, frames, service) == {f: maglev_model.pick(f, model_table(service)) for f in frames}
        before = snapshot(runner)
        changed = dataclasses.replace(WEB, backends=THREE[:2] + (FOURTH,))
        third, fourth = (Service(VIP, 8443 + i, "tcp", (Backend(THREE[i].ip, 443),)) for i in range(2))
        with pytest.raises(RoomError, match=r"^4 services do not fit the service map \(3; --max-services\)$"):
            runner.table.put_many([changed, third, fourth])
        assert snapshot(runner) == before
        with pytest.raises(SpecError, match=r"^10.96.0.10:81/tcp given twice$"):
            runner.table.put_many([fourth, dataclasses.replace(fourth, port=81), Service(VIP, 81, "tcp", THREE)])
        runner.table.put_many([changed, third])  # what fits goes in
        runner.table.delete_many([(VIP, 80, "tcp"), (VIP, 8443, "tcp")])
        assert [s.frontend for s in runner.table.services()] == [DNS.frontend]
        assert not [k for k in runner.table.maps.flows.keys() if k.dport != DNS.key().port]  # their flows went too


def test_a_map_another_process_filled_meanwhile_gives_back_what_did_not_fit(lab, monkeypatch):
    """Past the room check (another process filled the map since): the
    services before the full point stand and the rest give their new slots
    back."""
    with dnat_runner(lab, services=(), maglev_size=SIZE, max_services=3) as runner:
        runner.table.put_many([WEB, DNS])
        monkeypatch.setattr(runner.table, "_check_room", lambda services, slots: None)
        changed = dataclasses.replace(WEB, backends=THREE[:2] + (FOURTH,))
        third, fourth = (Service(VIP, 8443 + i, "tcp", (Backend(THREE[i].ip, 443),)) for i in range(2))
        with pytest.raises(BpfError, match=r"^\[Errno 7\] service map is full \(3 services\)") as info:
            runner.table.put_many([changed, third, fourth])
        assert info.value.done == 2
        assert {s.frontend: s for s in runner.table.services()} == {s.frontend: s for s in (changed, DNS, third)}
        in_use = [slot for slot, backend in runner.table.maps.backends.items() if backend.ip]
        assert len(in_use) == 3 + 3 + 1  # changed, DNS, third: WEB's third backend and fourth's slot are free
        frames = [flow(sport) for sport in range(22000, 22060)]
        assert run_flows(runner, frames, changed) == {f: maglev_model.pick(f, model_table(changed)) for f in frames}


def test_backends_past_what_the_slots_or_a_table_hold_are_refused_with_nothing_changed(lab):
    with dnat_runner(lab, services=(), maglev_size=SIZE, max_backends=5, table_backends=3) as runner:
        runner.table.put(WEB)
        before = snapshot(runner)
        four = dataclasses.replace(WEB, backends=THREE + (FOURTH,))
        with pytest.raises(RoomError, match=r"^10.96.0.10:80/tcp has 4 backends: each table has room for 3 "
                                            r"\(--max-service-backends\)$"):
            runner.table.put(four)
        other = Service(VIP, 81, "tcp", THREE)
        with pytest.raises(RoomError, match=r"^4 new backends do not fit the free backend slots \(2 of 5; "
                                            r"--max-backends\)$"):
            runner.table.put_many([Service(VIP, 82, "tcp", THREE[:1]), other])
        assert snapshot(runner) == before
        drained = dataclasses.replace(four, backends=THREE + (dataclasses.replace(FOURTH, weight=0),))
        runner.table.put(drained)  # a draining backend holds a slot but no room in the table
        assert sorted(runner.table.lookup(VIP, 80, "tcp").backends) == sorted(drained.backends)


def test_backend_slots_past_sixteen_bits_are_reached(lab):
    """Slot numbers are 32-bit (a table's entries are 16-bit indices into its
    own slots): with 65,536 slots taken by other services, a service's
    backends get slots above 65535 and flows still go where the model says."""
    taken = 65536
    with dnat_runner(lab, services=(), maglev_size=SIZE, max_backends=taken + 8) as runner:
        other = service_key("10.96.7.7", 80, "tcp")
        runner.table.maps.backends.update_many([(i, BackendSlot(ip_be32("10.250.0.1") + (i << 8), 80, 1, other))
                                               for i in range(taken)])
        runner.table.put(WEB)
        state = next(s for s in runner.table.states() if s.service.frontend == WEB.frontend)
        assert sorted(b.slot for b in state.backends) == [taken, taken + 1, taken + 2]
        frames = [flow(sport) for sport in range(23000, 23040)]
        assert run_flows(runner, frames, WEB) == {f: maglev_model.pick(f, model_table(WEB)) for f in frames}


def test_a_source_port_reused_for_another_service_of_the_same_backend_gets_that_services_replies(runner):
    """A client's connection to one service ended; kernels reuse ephemeral
    ports across destinations, so its next connection, to another service
    that shares the backend, may come from the same port. The backend sees
    the same four-tuple both times: its replies must now carry the second
    service's VIP and port, not the first's."""
    backend = THREE[0]
    first, second = Service(VIP, 80, "tcp", (backend,)), Service("10.96.0.11", 8443, "tcp", (backend,))
    runner.table.put(first)
    runner.table.put(second)
    for service in (first, second, first):
        frame = flow(40000, service)
        assert runner.run(frame).data == sent_to(frame, service, backend)
        assert_reply(runner, frame, service, backend)


def test_a_backend_that_takes_a_freed_slot_starts_counting_from_zero(runner):
    """Under churn: a backend removed frees its slot, and the next backend
    added takes it; `service list` must show the newcomer's packets, not
    the slot's old ones."""
    web = Service(VIP, 80, "tcp", THREE[:2])
    runner.table.put(web)
    run_flows(runner, [flow(sport) for sport in range(41000, 41040)], web)
    before = {b.backend.name: (b.slot, b.packets) for b in runner.table.states()[0].backends}
    assert all(packets for _, packets in before.values())  # both got flows
    gone_slot = before[THREE[1].name][0]
    runner.table.delete_backend(VIP, 80, "tcp", THREE[1].ip, THREE[1].port)
    runner.table.add_backend(VIP, 80, "tcp", THREE[2])
    after = {b.backend.name: (b.slot, b.packets) for b in runner.table.states()[0].backends}
    assert after == {THREE[0].name: before[THREE[0].name], THREE[2].name: (gone_slot, 0)}


def test_a_backend_whose_bytes_spell_another_services_key_is_not_that_services(runner):
    """A service's slots are found by searching the backends map for its key:
    a slot of another service whose backend is the VIP and port, with weight
    6 (TCP's protocol number), spells the same eight bytes one field early."""
    spelled = Service("10.96.0.20", 80, "tcp", (Backend("10.244.1.77", 80), Backend(VIP, 80, 6)))
    runner.table.put(WEB)
    runner.table.put(spelled)
    assert runner.table.lookup(VIP, 80, "tcp") == WEB
    assert sorted(runner.table.lookup("10.96.0.20", 80, "tcp").backends) == sorted(spelled.backends)


def test_the_backend_slots_are_read_mapped_and_equal_each_entry(runner):
    """The backends map is mappable (the loader reads all of it on every
    change), and what the mapped read returns is what each entry holds."""
    backends = runner.table.maps.backends
    assert backends.info().map_flags & BPF_F_MMAPABLE
    runner.table.put(WEB)
    runner.table.put(DNS)
    raw = backends.array_values_raw()
    assert raw == b"".join(bytes(backends.lookup(i)) for i in range(backends.max_entries))
    assert len(raw) == backends.max_entries * ctypes.sizeof(BackendSlot) and raw != bytes(len(raw))
