"""Kubernetes objects as xdp_dnat's input (bpflab.loaders.kube): what
`kubectl get services,endpointslices -A -o json|yaml` prints becomes the
services it should, endpoint conditions respected; a malformed object is
one line naming it, before anything changes; applying makes the maps
match and reports what changed."""
import copy
import json
from pathlib import Path

import pytest
import yaml

from bpflab.libbpf import BpfObject
from bpflab.loaders import kube
from bpflab.loaders.objects import object_path
from bpflab.loaders.protocols import ip_be32
from bpflab.loaders.service_table import DnatMaps, ServiceTable
from bpflab.loaders.services import Backend, FlowKey, RoomError, Service

CLUSTER = json.loads((Path(__file__).parent / "kube" / "cluster.json").read_text())

WEB_BACKENDS = (Backend("10.244.1.5", 8080), Backend("10.244.2.5", 8080), Backend("10.244.3.5", 8080, 0))
DNS_BACKENDS = (Backend("10.244.1.7", 53), Backend("10.244.2.7", 53))
WANT = [
    (Service("10.96.0.10", 80, "tcp", WEB_BACKENDS), "default/web:http"),
    (Service("10.96.0.10", 9090, "tcp", tuple(Backend(b.ip, 9100, b.weight) for b in WEB_BACKENDS)),
     "default/web:metrics"),
    (Service("10.96.0.53", 53, "tcp", DNS_BACKENDS), "kube-system/kube-dns:dns-tcp"),
    (Service("10.96.0.53", 53, "udp", DNS_BACKENDS), "kube-system/kube-dns:dns"),
    (Service("10.96.0.53", 9153, "tcp", tuple(Backend(b.ip, 9153) for b in DNS_BACKENDS)),
     "kube-system/kube-dns:metrics"),
    (Service("10.96.0.99", 80, "tcp", ()), "default/empty"),
]
SKIPPED = ["EndpointSlice default/web-v6-7fz9c: addressType IPv6",
           "Service default/headless: headless (clusterIP None)",
           "Service default/diameter: port 3868/SCTP (xdp_dnat balances TCP and UDP)"]


def test_a_cluster_as_kubectl_prints_it():
    """Ready endpoints take new flows, a terminating one still serving only
    keeps its flows (weight 0), one neither ready nor serving is left out;
    slice ports are matched by name, so targetPort names resolve; a Service
    without endpoints is kept with none."""
    desired = kube.parse(json.dumps(CLUSTER))
    assert desired.services == WANT
    assert desired.skipped == SKIPPED


def test_yaml_says_the_same():
    as_list = yaml.safe_dump(CLUSTER)
    as_documents = yaml.safe_dump_all(CLUSTER["items"])
    assert kube.parse(as_list) == kube.parse(as_documents) == kube.parse(json.dumps(CLUSTER))


def test_an_endpoint_without_conditions_is_ready_and_two_slices_add_up():
    cluster = copy.deepcopy(CLUSTER)
    for item in cluster["items"]:
        if item["metadata"]["name"] == "kube-dns-4tq9w":
            del item["endpoints"][0]["conditions"]  # the API: nil means ready
    (dns,) = [s for s, origin in kube.parse(json.dumps(cluster)).services if origin.endswith(":dns")]
    assert dns.backends == DNS_BACKENDS


def broken(mutate) -> str:
    cluster = copy.deepcopy(CLUSTER)
    mutate({f"{i['kind']} {i['metadata']['name']}": i for i in cluster["items"]})
    return json.dumps(cluster)


BROKEN = [
    ("port not a number", lambda o: o["Service web"]["spec"]["ports"][0].update(port="http"),
     "Service default/web: spec.ports[0].port is 'http', not a port (1-65535)"),
    ("bad cluster IP", lambda o: o["Service web"]["spec"].update(clusterIP="10.96.0.300", clusterIPs=["10.96.0.300"]),
     "Service default/web: spec.clusterIP '10.96.0.300' is not an IP address"),
    ("no ports", lambda o: o["Service empty"]["spec"].pop("ports"),
     "Service default/empty: spec.ports is None, not a list"),
    ("bad endpoint address", lambda o: o["EndpointSlice web-8x2kq"]["endpoints"][1].update(addresses=["10.244.2.300"]),
     "EndpointSlice default/web-8x2kq: endpoints[1].addresses[0] '10.244.2.300' is not an IPv4 address"),
    ("slice without its service", lambda o: o["EndpointSlice web-8x2kq"]["metadata"].pop("labels"),
     "EndpointSlice default/web-8x2kq: no metadata.labels[kubernetes.io/service-name]"),
    ("slice port out of range", lambda o: o["EndpointSlice web-8x2kq"]["ports"][0].update(port=0),
     "EndpointSlice default/web-8x2kq: ports[0].port is 0, not a port (1-65535)"),
    ("two services, one VIP and port", lambda o: o["Service empty"]["spec"].update(clusterIP="10.96.0.10",
                                                                                  clusterIPs=["10.96.0.10"]),
     "Service default/empty: 10.96.0.10:80/tcp is also default/web:http"),
]


@pytest.mark.parametrize("label,mutate,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_malformed_object_is_one_line_naming_it(label, mutate, message):
    with pytest.raises(kube.KubeError) as info:
        kube.parse(broken(mutate))
    assert str(info.value) == message


@pytest.mark.parametrize("text,message", [
    ("{not json", "input: not JSON: "),
    ("a: [b\n", "input: not YAML or JSON: "),
    ('[{"metadata": {}}]', "input: an object without kind"),
])
def test_input_that_is_not_objects(text, message):
    with pytest.raises(kube.KubeError) as info:
        kube.parse(text)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.fixture
def table():
    with BpfObject(object_path("xdp_dnat")) as obj:
        yield ServiceTable(DnatMaps.of(obj), 251)


@pytest.mark.kernel
def test_applying_makes_the_maps_match_and_says_what_changed(table):
    table.put(Service.to("10.96.0.200", 80, "tcp", "10.244.9.9", 80))  # not in the cluster: removed
    table.put(Service("10.96.0.10", 80, "tcp", WEB_BACKENDS[:1]))  # in it, with fewer backends: changed
    report = kube.apply(table, kube.parse(json.dumps(CLUSTER)))
    assert report.removed == ["10.96.0.200:80/tcp"]
    assert report.changed == ["10.96.0.10:80/tcp (default/web:http): +10.244.2.5:8080 +10.244.3.5:8080"]
    assert report.added[0] == "10.96.0.10:9090/tcp (default/web:metrics) -> 10.244.1.5:9100, 10.244.2.5:9100, " \
                              "10.244.3.5:9100@0 draining"
    assert report.added[-1] == "10.96.0.99:80/tcp (default/empty) -> no ready backend"
    assert (len(report.added), report.unchanged, report.skipped) == (5, 0, SKIPPED)
    assert [(s.vip, s.port, s.proto, sorted(s.backends)) for s in table.services()] == \
        [(s.vip, s.port, s.proto, sorted(s.backends)) for s, _ in WANT]
    states = {s.service.frontend: s for s in table.states()}
    web = states["10.96.0.10:80/tcp"]
    assert web.table_size == 251 and [b.backend.weight for b in web.backends] == [1, 1, 0]
    assert states["10.96.0.99:80/tcp"].table_size == 0 and table.table("10.96.0.99", 80, "tcp") == (0, [])
    again = kube.apply(table, kube.parse(json.dumps(CLUSTER)))
    assert (again.added, again.removed, again.changed, again.unchanged) == ([], [], [], 6)
    assert "6 unchanged" in again.text()


@pytest.mark.kernel
def test_an_endpoint_that_goes_ends_its_flows_only(table):
    kube.apply(table, kube.parse(json.dumps(CLUSTER)))
    slots = {b.backend.ip: b.slot for s in table.states() if s.service.port == 80 for b in s.backends}
    for n, ip in enumerate(("10.244.1.5", "10.244.2.5")):  # as the program pins them
        table.maps.flows.update(FlowKey(ip_be32("10.0.1.2"), ip_be32("10.96.0.10"), 40000 + n, 0x5000, 6), slots[ip])
    cluster = copy.deepcopy(CLUSTER)
    for item in cluster["items"]:
        if item["metadata"]["name"] == "web-8x2kq":
            item["endpoints"] = [e for e in item["endpoints"] if e["addresses"] != ["10.244.2.5"]]
    report = kube.apply(table, kube.parse(json.dumps(cluster)))
    assert report.changed == ["10.96.0.10:80/tcp (default/web:http): -10.244.2.5:8080",
                              "10.96.0.10:9090/tcp (default/web:metrics): -10.244.2.5:9100"]
    assert [v for _, v in table.maps.flows.items()] == [slots["10.244.1.5"]]


@pytest.mark.kernel
def test_a_change_too_big_for_one_swap_goes_service_by_service():
    """Every endpoint of the cluster replaced: one swap would hold the old
    and the new slots of every service at once (24), the map has 15; one
    service at a time frees as it goes, and fits."""
    with BpfObject(object_path("xdp_dnat"), load=False) as obj:
        for name in ("backends", "backend_packets"):
            obj.map(name).set_max_entries(15)
        obj.load()
        table = ServiceTable(DnatMaps.of(obj), 251)
        kube.apply(table, kube.parse(json.dumps(CLUSTER)))
        moved = copy.deepcopy(CLUSTER)
        for item in moved["items"]:
            for endpoint in item.get("endpoints", []):
                endpoint["addresses"] = [a[:-1] + str(int(a[-1]) + 1) if "." in a else a for a in endpoint["addresses"]]
        report = kube.apply(table, kube.parse(json.dumps(moved)))
        assert (len(report.changed), report.unchanged) == (5, 1)
        want = [(s.vip, s.port, s.proto, sorted(Backend(b.ip[:-1] + str(int(b.ip[-1]) + 1), b.port, b.weight)
                                                for b in s.backends)) for s, _ in WANT]
        assert [(s.vip, s.port, s.proto, sorted(s.backends)) for s in table.services()] == want
        assert sum(len(s.backends) for s in table.states()) == 12


@pytest.mark.kernel
def test_a_table_swapped_while_it_is_read_is_read_again(table, monkeypatch):
    """Reading a service's table takes its inner map's id from the services
    map, then opens the map by id; another process's swap in between frees
    that map (a running loader died of it on 6.1). The reader asks again."""
    from bpflab.loaders import service_table

    first = Service("10.96.0.10", 80, "tcp", WEB_BACKENDS[:2])
    table.put(first)
    opened = []

    def from_id_after_a_swap(map_id):
        opened.append(map_id)
        if len(opened) == 1:  # as if the table changed and the old one went
            table.put(Service("10.96.0.10", 80, "tcp", WEB_BACKENDS[1:2]))
            raise service_table.BpfError(2, f"cannot open map id {map_id}")
        return real_from_id(map_id)

    real_from_id = service_table.Map.from_id
    monkeypatch.setattr(service_table.Map, "from_id", from_id_after_a_swap)
    size, slots = table.table("10.96.0.10", 80, "tcp")
    assert len(opened) == 2 and opened[0] != opened[1]
    (state,) = table.states()
    assert (size, set(slots)) == (251, {state.backends[0].slot})  # the new table: one backend


@pytest.mark.kernel
def test_an_endpoint_slice_of_five_thousand_endpoints_is_refused_naming_the_flag():
    """More ready endpoints than a table has room for: one line naming the
    limit and --max-service-backends, before anything changes."""
    big = copy.deepcopy(CLUSTER)
    web_slice = next(item for item in big["items"] if item["kind"] == "EndpointSlice" and
                     item["metadata"]["labels"].get("kubernetes.io/service-name") == "web")
    web_slice["endpoints"] = [{"addresses": [f"10.245.{i // 250}.{i % 250 + 1}"], "conditions": {"ready": True}}
                              for i in range(5000)]
    with BpfObject(object_path("xdp_dnat"), load=False) as obj:
        for name in ("backends", "backend_packets"):
            obj.map(name).set_max_entries(16384)
        obj.load()
        table = ServiceTable(DnatMaps.of(obj), 251, 1024)
        table.put(Service.to("10.96.0.200", 80, "tcp", "10.244.9.9", 80))
        before = table.services()
        with pytest.raises(RoomError) as info:
            kube.apply(table, kube.parse(json.dumps(big)))
        assert str(info.value) == "10.96.0.10:80/tcp has 5000 backends: each table has room for 1024 " \
                                  "(--max-service-backends)"
        assert table.services() == before
