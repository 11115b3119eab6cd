"""Maps filled from JSON by field name through the object's BTF
(bpflab.libbpf.btf_codec): network byte order where the C says __be16 or
__be32, dotted IPv4 addresses, arrays, per-CPU values, and one clear error
naming the field for anything that does not fit, with nothing written."""
import pytest

from bpflab.libbpf import BpfObject, possible_cpus
from bpflab.libbpf.btf_codec import EncodeError, dump_map, fill_map
from bpflab.loaders.objects import BUILD_DIR, object_path
from bpflab.loaders.services import Service, ServiceTable

pytestmark = pytest.mark.kernel
SERVICE = {"key": {"vip": "10.96.0.10", "port": 80, "proto": 6}, "value": {"ip": "10.244.1.5", "port": 8080}}


@pytest.fixture
def dnat():
    with BpfObject(object_path("xdp_dnat")) as obj:
        yield obj


def test_a_service_by_field_name_is_the_service_the_program_sees(dnat):
    assert fill_map(dnat, "services", [SERVICE]) == 1
    assert ServiceTable(dnat.map("services"), dnat.map("service_by_backend")).list() == [
        Service("10.96.0.10", 80, "tcp", "10.244.1.5", 8080)]
    # Network byte order, as the C's __be32/__be16 say: 10.96.0.10, port 80.
    (key, (value,)), = list(dnat.map("services").items_raw())
    assert (key.hex(), value.hex()) == ("0a60000a00500600", "0af401051f900000")
    assert dump_map(dnat, "services") == [SERVICE]


def test_numbers_are_taken_for_addresses_too(dnat):
    fill_map(dnat, "services", [{"key": {"vip": 0x0A60000A, "port": 53, "proto": 17},
                                 "value": {"ip": 0x0AF40105, "port": 5353}}])
    assert dump_map(dnat, "services")[0]["key"]["vip"] == "10.96.0.10"


@pytest.mark.parametrize("entry,message", [
    ({"key": {"vip": "10.96.0.10", "prot": 6}, "value": {}},
     "map services, entry 1, key.prot: struct service_key has no field 'prot' (has: vip, port, proto, pad)"),
    ({"key": {"port": 70000}, "value": {}}, "map services, entry 1, key.port: 70000 does not fit __be16 (0..65535)"),
    ({"key": {"vip": "10.96.0.300"}, "value": {}}, "map services, entry 1, key.vip: '10.96.0.300' is not a dotted"),
    ({"key": {}, "value": {"pad": [1, 2, 3]}}, "map services, entry 1, value.pad: 3 elements do not fit an array of 2"),
    ({"key": {}}, "map services, entry 1: want {\"key\": ..., \"value\": ...}"),
    ({"key": {"proto": "tcp"}, "value": {}}, "map services, entry 1, key.proto: want a number for unsigned char"),
], ids=["unknown field", "too big", "bad address", "array too long", "no value", "not a number"])
def test_what_does_not_fit_is_one_line_naming_the_field_and_nothing_is_written(dnat, entry, message):
    with pytest.raises(EncodeError) as info:
        fill_map(dnat, "services", [SERVICE, entry])
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert dump_map(dnat, "services") == []  # the good first entry was not written either


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
