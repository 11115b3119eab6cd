"""The libbpf binding, checked against values the kernel itself wrote."""
import contextlib
import ctypes
import errno
import struct

import pytest

from bpflab.host.netns import entered, ifindex
from bpflab.host.waits import settle
from bpflab.lab.frames import towards_peer
from bpflab.libbpf import (
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_NOEXIST,
    XDP_DROP,
    XDP_PASS,
    AlreadyAttached,
    BpfError,
    BpfObject,
    Map,
    RingBuffer,
    VerifierError,
    XdpLink,
    _lib,  # noqa: TID251 - kernels without batches, faked at libbpf's calls
    possible_cpus,
    xdp_query,
)
from bpflab.loaders.interfaces import XdpOnInterface
from bpflab.loaders.objects import BUILD_DIR

pytestmark = pytest.mark.kernel
BINDING_OBJ = BUILD_DIR / "tests" / "binding.bpf.o"


class BindingKey(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint32), ("tag", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3)]


class BindingValue(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


@pytest.fixture
def binding():
    with BpfObject(BINDING_OBJ) as obj:
        obj.map("by_len").bind(BindingKey, BindingValue)
        obj.map("percpu_packets").bind(ctypes.c_uint32, ctypes.c_uint64)
        yield obj


def test_open_finds_programs_and_maps_by_name(binding):
    assert list(binding.programs) == ["binding_prog"]
    assert sorted(binding.maps) == ["by_len", "events", "events_lost", "percpu_packets"]
    assert binding.program("binding_prog").section == "xdp"
    with pytest.raises(KeyError, match="no map 'nope'.*has: "):
        binding.map("nope")


def test_bind_refuses_a_mirror_of_the_wrong_size(binding):
    class Short(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint32)]

    with pytest.raises(TypeError, match="key mirror Short is 4 bytes, the map's key is 8 bytes"):
        binding.map("by_len").bind(Short, BindingValue)


def test_test_run_returns_verdict_data_and_duration(binding):
    prog = binding.program("binding_prog")
    frame = bytes(range(60))
    result = prog.test_run(frame, repeat=5)
    assert result.retval == XDP_PASS and result.action == "XDP_PASS"
    assert result.data == frame
    assert result.duration_ns > 0
    assert prog.test_run(b"\xff" + frame[1:]).retval == XDP_DROP


def test_hash_map_holds_exactly_what_the_program_counted(binding):
    prog = binding.program("binding_prog")
    for size in (60, 60, 60, 100):
        prog.test_run(bytes(size))
    by_len = binding.map("by_len")
    got = {k.len: (v.packets, v.bytes) for k, v in by_len.items()}
    assert got == {60: (3, 180), 100: (1, 100)}
    key = BindingKey(len=60, tag=7)
    assert by_len.lookup(key).packets == 3
    assert by_len.lookup(BindingKey(len=61, tag=7)) is None


def test_update_delete_and_flags(binding):
    by_len = binding.map("by_len")
    key = BindingKey(len=1, tag=2)
    by_len.update(key, BindingValue(5, 6))
    assert (by_len.lookup(key).packets, by_len.lookup(key).bytes) == (5, 6)
    with pytest.raises(BpfError) as info:
        by_len.update(key, BindingValue(0, 0), flags=BPF_NOEXIST)
    assert info.value.errno == errno.EEXIST
    assert by_len.delete(key) is True
    assert by_len.delete(key) is False
    assert list(by_len.keys()) == []


def refuse_one_by_one(*args):
    raise AssertionError("an entry was read or written on its own: the batch was not used")


def test_many_updates_and_deletes_each_in_one_call(binding, monkeypatch):
    by_len = binding.map("by_len")  # a hash of 64 entries
    items = [(BindingKey(len=n, tag=1), BindingValue(n, 2 * n)) for n in range(40)]
    with monkeypatch.context() as patch:
        patch.setattr(_lib, "bpf_map_update_elem", refuse_one_by_one)
        patch.setattr(_lib, "bpf_map_delete_elem", refuse_one_by_one)
        by_len.update_many(items)
        assert {k.len: (v.packets, v.bytes) for k, v in by_len.items()} == {n: (n, 2 * n) for n in range(40)}
        by_len.delete_many([BindingKey(len=n, tag=1) for n in range(10)])
        assert sorted(k.len for k in by_len.keys()) == list(range(10, 40))
        # Full part way: the error says how many went in, and those are in.
        with pytest.raises(BpfError) as info:
            by_len.update_many([(BindingKey(len=n, tag=2), BindingValue(n, n)) for n in range(40)])
        # (about 64 - 30: the kernel counts entries per CPU, approximately)
        went_in = [k.len for k in by_len.keys() if k.tag == 2]
        assert (info.value.errno, info.value.done, sorted(went_in)) == (errno.E2BIG, len(went_in), list(range(len(went_in))))
        assert 30 <= len(went_in) <= 38
        with pytest.raises(BpfError) as info:
            by_len.delete_many([BindingKey(len=39, tag=1), BindingKey(len=99, tag=1)])
        assert info.value.errno == errno.ENOENT
    # A kernel without batches for a map type: the same, one entry at a time.
    monkeypatch.setattr(_lib, "bpf_map_update_batch", lambda *args: -errno.EINVAL)
    by_len.clear()
    by_len.update_many(items[:3])
    assert sorted(k.len for k in by_len.keys()) == [0, 1, 2]
    monkeypatch.setattr(_lib, "bpf_map_delete_batch", lambda *args: -524)  # the kernel's ENOTSUPP
    by_len.delete_many([BindingKey(len=n, tag=1) for n in (0, 2)])
    assert [k.len for k in by_len.keys()] == [1]
    with pytest.raises(BpfError, match="no such key"):
        by_len.delete_many([BindingKey(len=1, tag=1), BindingKey(len=1, tag=1)])
    monkeypatch.setattr(_lib, "bpf_map_update_batch", lambda *args: -errno.EOPNOTSUPP)
    with pytest.raises(BpfError) as info:
        by_len.update_many([(BindingKey(len=n, tag=3), BindingValue(n, n)) for n in range(70)])
    went_in = [k.len for k in by_len.keys() if k.tag == 3]
    assert (info.value.errno, info.value.done, sorted(went_in)) == (errno.E2BIG, len(went_in), list(range(len(went_in))))


def test_percpu_map_has_one_value_per_cpu(binding):
    prog = binding.program("binding_prog")
    cpus = possible_cpus()
    for cpu in range(min(cpus, 2)):
        prog.test_run(bytes(64), repeat=3 + cpu, cpu=cpu)
    values = binding.map("percpu_packets").lookup(0)
    assert len(values) == cpus
    assert values[:2] == [3, 4][: min(cpus, 2)]
    assert sum(values) == sum([3, 4][: min(cpus, 2)])


@pytest.fixture
def counters():
    """A per-CPU array of five u64 counters, entries 0, 2 and 4 set on
    every CPU (the last CPU's values need 64 bits), 1 and 3 left 0; and
    each entry's sum over the CPUs."""
    cpus = possible_cpus()
    with contextlib.closing(Map.create("sums", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 5)) as counters:
        counters.bind(ctypes.c_uint32, ctypes.c_uint64)
        written = {i: [(i + 1) * 1000 + cpu + (1 << 40 if cpu == cpus - 1 else 0) for cpu in range(cpus)]
                   for i in (0, 2, 4)}
        for i, values in written.items():
            counters.update(i, values)
        expected = [sum(written.get(i, [0])) for i in range(5)]
        assert [sum(counters.lookup(i)) for i in range(5)] == expected
        yield counters, expected


@pytest.mark.since_kernel("percpu_array_batch")
def test_counter_sums_read_every_entry_on_every_cpu_in_one_call(counters, monkeypatch):
    counters, expected = counters
    monkeypatch.setattr(_lib, "bpf_map_lookup_elem", refuse_one_by_one)
    assert counters.counter_sums() == expected


@pytest.mark.parametrize("answer", [-errno.EINVAL, -524], ids=["EINVAL", "ENOTSUPP"])
def test_counter_sums_without_batches_read_entry_by_entry(counters, monkeypatch, answer):
    """What 5.10 answers for a per-CPU array's batch lookup (ENOTSUPP)."""
    counters, expected = counters
    monkeypatch.setattr(_lib, "bpf_map_lookup_batch", lambda *args: answer)
    assert counters.counter_sums() == expected
    monkeypatch.setattr(_lib, "bpf_map_lookup_batch", lambda *args: -errno.EPERM)
    with pytest.raises(BpfError) as info:
        counters.counter_sums()  # any other error is the caller's to see
    assert info.value.errno == errno.EPERM


def test_counter_sums_only_sum_per_cpu_u64_arrays():
    with contextlib.closing(Map.create("plain", BPF_MAP_TYPE_ARRAY, 4, 8, 2)) as plain, \
            pytest.raises(BpfError, match="not a per-CPU array of u64 counters"):
        plain.counter_sums()


def test_ring_buffer_delivers_each_event_to_the_callback(binding):
    prog = binding.program("binding_prog")
    events = []
    with RingBuffer(binding.map("events"), lambda raw: events.append(struct.unpack("<II", raw))) as ring:
        for size in (20, 21, 22):
            prog.test_run(b"\x01\x02\x03\x04" + bytes(size - 4))
        assert ring.poll(100) == 3
    assert events == [(20, 0x04030201), (21, 0x04030201), (22, 0x04030201)]


def test_a_callback_exception_surfaces_from_poll(binding):
    prog = binding.program("binding_prog")

    def boom(raw):
        raise ValueError("bad record")

    with RingBuffer(binding.map("events"), boom) as ring:
        prog.test_run(bytes(30))
        with pytest.raises(ValueError, match="bad record"):
            ring.poll(100)


def test_verifier_rejection_carries_program_name_and_log():
    from tests.bpfsrc import unchecked_read_message

    obj = BUILD_DIR / "tests" / "unchecked_read.bpf.o"
    with pytest.raises(VerifierError) as info:
        BpfObject(obj)
    err = info.value
    assert err.program == "unchecked"
    assert "invalid access to packet" in err.log
    assert err.message == unchecked_read_message("R1")
    assert str(err) == f"verifier rejected program 'unchecked': {unchecked_read_message('R1')}"


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_xdp_link_attach_query_detach_by_ifindex(pair_lab, binding, mode):
    """The binding works on interface indexes of the calling thread's
    namespace; the test enters the lab's to use it."""
    prog = binding.program("binding_prog")
    with entered(pair_lab.netns("right")):
        index = ifindex("eth0")
        assert xdp_query(index).prog_id == 0
        with XdpLink(prog.fd, index, mode) as link:
            state = xdp_query(index)
            assert state.mode == link.mode == mode and state.prog_id > 0
            with pytest.raises(AlreadyAttached, match=f"interface {index} already has an XDP program attached"):
                XdpLink(prog.fd, index, mode)
        assert xdp_query(index).prog_id == 0
    with entered(pair_lab.netns("left")):  # the other end of the veth was never touched
        assert xdp_query(ifindex("eth0")).prog_id == 0


def test_attachments_by_name_in_a_namespace_say_which_interface(pair_lab, binding):
    from bpflab.loaders.interfaces import query

    ns, prog = pair_lab.netns("right"), binding.program("binding_prog")
    with XdpOnInterface(prog.fd, "eth0", ns, "generic") as attachment:
        assert query("eth0", ns) == query("eth0", ns) and query("eth0", ns).mode == attachment.mode == "generic"
        with pytest.raises(AlreadyAttached, match="interface 'eth0' already has an XDP program attached "
                                                  r"\(prog id \d+, generic mode\)"):
            XdpOnInterface(prog.fd, "eth0", ns, "generic")
    assert query("eth0", ns).prog_id == 0


def test_attached_program_sees_lab_traffic(pair_lab, binding):
    from scapy.layers.inet import UDP

    frame = towards_peer(pair_lab.topology, "left") / UDP(dport=9) / bytes(58)
    with XdpOnInterface(binding.program("binding_prog").fd, "eth0", pair_lab.netns("right"), "native"):
        pair_lab.send("left", "eth0", [frame] * 4)
        by_len = binding.map("by_len")
        key = BindingKey(len=len(frame), tag=7)

        def counted():
            value = by_len.lookup(key)
            return None if value is None else (value.packets, value.bytes)

        assert settle(counted, (4, 4 * len(frame))) == (4, 4 * len(frame))


def test_a_callback_can_pause_a_poll_that_would_never_end(binding):
    """Under sustained load libbpf keeps consuming; returning True pauses
    after that record, and the next consume goes on where it stopped."""
    prog = binding.program("binding_prog")
    got = []
    with RingBuffer(binding.map("events"), lambda raw: got.append(raw) or len(got) % 2 == 0) as ring:
        for size in range(20, 25):
            prog.test_run(bytes(size))
        ring.consume()
        assert (len(got), ring.paused) == (2, True)
        for _ in range(5):  # at most one pause per two records
            if not ring.paused and len(got) == 5:
                break
            ring.consume()
        assert [struct.unpack("<I", r[:4])[0] for r in got] == [20, 21, 22, 23, 24]
