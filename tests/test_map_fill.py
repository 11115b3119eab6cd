"""Maps filled from JSON by field name through the object's BTF
(bpflab.libbpf.btf_codec): network byte order where the C says __be16 or
__be32, dotted IPv4 addresses, arrays, per-CPU values, and one clear error
naming the field for anything that does not fit, with nothing written."""
import pytest

from bpflab.libbpf import BpfObject, possible_cpus
from bpflab.libbpf.btf_codec import EncodeError, dump_map, fill_map
from bpflab.loaders.objects import BUILD_DIR, object_path
from bpflab.loaders.service_table import DnatMaps, ServiceTable
from bpflab.loaders.services import Backend, Service
from tests.xdp_dnat_frames import maps_json

pytestmark = pytest.mark.kernel
# A connection's return-path entry: a struct key with __be32/__be16 fields and padding.
REPLY = {"key": {"saddr": "10.244.1.5", "daddr": "10.0.1.2", "sport": 8080, "dport": 40000, "proto": 6},
         "value": {"vip": "10.96.0.10", "port": 80, "proto": 6}}


@pytest.fixture
def dnat():
    with BpfObject(object_path("xdp_dnat")) as obj:
        yield obj


def test_an_entry_by_field_name_is_the_entry_the_program_sees(dnat):
    assert fill_map(dnat, "dnat_replies", [REPLY]) == 1
    # Network byte order, as the C's __be32/__be16 say: 10.244.1.5, port 8080, ...
    (key, (value,)), = list(dnat.map("dnat_replies").items_raw())
    assert (key.hex(), value.hex()) == ("0af401050a0001021f909c4006000000", "0a60000a00500600")
    assert dump_map(dnat, "dnat_replies") == [REPLY]


def test_a_map_of_maps_takes_each_inner_maps_entries(dnat):
    """xdp_dnat's services map holds a Maglev table per service (an inner
    map): filled by field name, it is the service the loader's table reads."""
    maps = maps_json([Service("10.96.0.10", 80, "tcp", (Backend("10.244.1.5", 8080), Backend("10.244.2.5", 8080, 3)))])
    assert fill_map(dnat, "backends", maps["backends"]) == 2
    assert fill_map(dnat, "services", maps["services"]) == 1
    table = ServiceTable(DnatMaps.of(dnat))
    assert table.services() == [Service("10.96.0.10", 80, "tcp", (Backend("10.244.1.5", 8080), Backend("10.244.2.5", 8080, 3)))]
    assert table.table("10.96.0.10", 80, "tcp") == (2, [0, 1])
    (dumped,) = dump_map(dnat, "services")
    assert dumped["key"] == {"vip": "10.96.0.10", "port": 80, "proto": 6}
    ((inner,),) = [dumped["value"]]
    assert inner["key"] == 0 and inner["value"]["size"] == 2 and inner["value"]["entry"][:3] == [0, 1, 0] and \
        inner["value"]["slot"][:3] == [0, 1, 0]


def test_numbers_are_taken_for_addresses_too(dnat):
    fill_map(dnat, "dnat_replies", [{"key": {"saddr": 0x0AF40105, "sport": 53, "proto": 17},
                                     "value": {"vip": 0x0A60000A, "port": 53}}])
    assert dump_map(dnat, "dnat_replies")[0]["key"]["saddr"] == "10.244.1.5"


@pytest.mark.parametrize("entry,message", [
    ({"key": {"saddr": "10.244.1.5", "prot": 6}, "value": {}},
     "map dnat_replies, entry 1, key.prot: struct flow_key has no field 'prot' (has: saddr, daddr, sport, dport, proto, pad)"),
    ({"key": {"sport": 70000}, "value": {}}, "map dnat_replies, entry 1, key.sport: 70000 does not fit __be16 (0..65535)"),
    ({"key": {"saddr": "10.96.0.300"}, "value": {}}, "map dnat_replies, entry 1, key.saddr: '10.96.0.300' is not a dotted"),
    ({"key": {"pad": [1, 2, 3, 4]}, "value": {}}, "map dnat_replies, entry 1, key.pad: 4 elements do not fit an array of 3"),
    ({"key": {}}, "map dnat_replies, entry 1: want {\"key\": ..., \"value\": ...}"),
    ({"key": {"proto": "tcp"}, "value": {}}, "map dnat_replies, entry 1, key.proto: want a number for unsigned char"),
], ids=["unknown field", "too big", "bad address", "array too long", "no value", "not a number"])
def test_what_does_not_fit_is_one_line_naming_the_field_and_nothing_is_written(dnat, entry, message):
    with pytest.raises(EncodeError) as info:
        fill_map(dnat, "dnat_replies", [REPLY, entry])
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert dump_map(dnat, "dnat_replies") == []  # the good first entry was not written either


def test_an_inner_entry_that_does_not_fit_names_its_place(dnat):
    good = maps_json([Service.to("10.96.0.10", 80, "tcp", "10.244.1.5", 8080)])["services"][0]
    bad = {"key": {"vip": "10.96.0.11", "port": 80, "proto": 6}, "value": [{"key": 0, "value": {"sise": 7}}]}
    with pytest.raises(EncodeError) as info:
        fill_map(dnat, "services", [good, bad])
    assert str(info.value).startswith("map services, entry 1, value: inner map, entry 0, value.sise: struct "
                                      "maglev_table has no field 'sise' (has: size, backends, entry, slot)")
    assert dump_map(dnat, "services") == []


def test_per_cpu_values_go_to_every_cpu_and_arrays_fill_by_index():
    with BpfObject(BUILD_DIR / "tests" / "binding.bpf.o") as obj:
        fill_map(obj, "percpu_packets", [{"key": 0, "value": 7}])
        assert dump_map(obj, "percpu_packets") == [{"key": 0, "value": [7] * possible_cpus()}]
        fill_map(obj, "by_len", [{"key": {"len": 60, "tag": 7}, "value": {"packets": 2, "bytes": 120}}])
        assert dump_map(obj, "by_len") == [{"key": {"len": 60, "tag": 7}, "value": {"packets": 2, "bytes": 120}}]


def test_a_map_without_field_names_says_so():
    with BpfObject(BUILD_DIR / "tests" / "binding.bpf.o") as obj, pytest.raises(EncodeError, match="map events: "
                                                                                 "declared without BTF key"):
        fill_map(obj, "events", [])


def test_ipv6_addresses_go_in_and_come_out_as_text():
    """struct in6_addr and __be32[4] fields take and show IPv6 text; the
    bytes are the address in network order."""
    entry = {"key": {"vip": "fd00:96::10", "port": 53, "proto": 17},
             "value": {"addr": "fd00:244::5", "port": 5353, "weight": 2}}
    with BpfObject(BUILD_DIR / "tests" / "maps6.bpf.o") as obj:
        assert fill_map(obj, "svc6", [entry]) == 1
        assert fill_map(obj, "allowed6", [{"key": "2001:db8::1", "value": 1}]) == 1
        (key, (value,)), = list(obj.map("svc6").items_raw())
        assert key.hex() == "fd000096000000000000000000000010" + "0035" + "11" + "00"
        assert value[:16].hex() == "fd000244000000000000000000000005"
        assert dump_map(obj, "svc6") == [entry]
        assert dump_map(obj, "allowed6") == [{"key": "2001:db8::1", "value": 1}]
        with pytest.raises(EncodeError, match=r"^map svc6, entry 0, key.vip: 'fd00::zz' is not an IPv6 address$"):
            fill_map(obj, "svc6", [{"key": {"vip": "fd00::zz"}, "value": {}}])
