"""Network isolation: default-deny, pod isolation, undeclared flows and intended flows nobody allows.

The environment: stack application (hf-app) talks to stack data (hf-data) on 5432, every stack
resolves DNS; both namespaces deny by default. Each test breaks one thing.
"""

from __future__ import annotations

import pytest

from test_policy_builders import (
    container,
    default_deny,
    deployment,
    namespace,
    netpol,
    ns_peer,
    obj,
    policies,
    run,
    summary,
    tcp,
)

NETWORK_RULES = ("network-default-deny", "network-pod-isolation", "network-undeclared-flow", "network-intended-flow-missing")
FLOWS = [
    {"from": "application", "to": "data", "ports": [5432]},
    {"from": "any-stack", "to": "kube-dns", "ports": ["53/UDP", "53/TCP"]},
]
ENDPOINTS = {"kube-dns": {"namespace": "kube-system", "pods": {"k8s-app": "kube-dns"}}}
DNS = [{"to": [ns_peer("kube-system", {"k8s-app": "kube-dns"})], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]


def _policies(tmp_path, *rules, flows=None, endpoints=None):
    settings = {"network": {"endpoints": endpoints or ENDPOINTS, "intended_flows": FLOWS if flows is None else flows}}
    return policies(tmp_path, *(rules or NETWORK_RULES), settings=settings)


def _app() -> list:
    return [
        obj(namespace("hf-app", "application")),
        obj(default_deny("hf-app")),
        obj(netpol("allow-dns", "hf-app", types=["Egress"], egress=DNS)),
        obj(netpol("to-postgres", "hf-app", types=["Egress"], egress=[{"to": [ns_peer("hf-data")], "ports": tcp(5432)}])),
        obj(deployment("prescription", "hf-app")),
    ]


def _data(*extra) -> list:
    objects = [
        namespace("hf-data", "data"),
        default_deny("hf-data"),
        netpol("allow-dns", "hf-data", types=["Egress"], egress=DNS),
        netpol("postgres-from-app", "hf-data", pods={"app.kubernetes.io/name": "postgres"}, types=["Ingress"],
               ingress=[{"from": [ns_peer("hf-app")], "ports": tcp(5432)}]),
        deployment("postgres", "hf-data", containers=[container(port=5432)]),
        *extra,
    ]
    return [obj(o, "data") for o in objects]


def _without(objects: list, kind: str, name: str, ns: str) -> list:
    return [o for o in objects if (o.kind, o.id.name, o.id.namespace) != (kind, name, ns)]


def test_an_isolated_environment_with_only_intended_flows_passes(tmp_path):
    assert run(_app() + _data(), _policies(tmp_path)).violations == []


# --- network-default-deny ------------------------------------------------------------------------

def test_a_namespace_without_default_deny_is_reported(tmp_path):
    objects = _app() + _without(_data(), "NetworkPolicy", "default-deny", "hf-data")
    report = run(objects, _policies(tmp_path, "network-default-deny"))
    assert summary(report.violations) == [
        ("network-default-deny", "core/Namespace/-/hf-data", "namespace hf-data has no default-deny NetworkPolicy for Ingress and Egress")
    ]
    assert report.violations[0].stack == "data"


def test_an_egress_only_default_deny_leaves_ingress_missing(tmp_path):
    objects = _without(_app(), "NetworkPolicy", "default-deny", "hf-app") + [obj(netpol("deny-egress", "hf-app", types=["Egress"]))]
    report = run(objects + _data(), _policies(tmp_path, "network-default-deny"))
    assert [v.message for v in report.violations] == ["namespace hf-app has no default-deny NetworkPolicy for Ingress"]


def test_a_policy_with_rules_is_not_a_default_deny(tmp_path):
    allow_all = netpol("default-deny", "hf-data", types=["Ingress", "Egress"], ingress=[{}], egress=[{}])
    objects = _app() + _without(_data(), "NetworkPolicy", "default-deny", "hf-data") + [obj(allow_all, "data")]
    report = run(objects, _policies(tmp_path, "network-default-deny"))
    assert [v.message for v in report.violations] == ["namespace hf-data has no default-deny NetworkPolicy for Ingress and Egress"]


def test_a_default_deny_written_as_two_policies_counts(tmp_path):
    split = [obj(netpol("deny-in", "hf-app", types=["Ingress"])), obj(netpol("deny-out", "hf-app", types=["Egress"]))]
    objects = _without(_app(), "NetworkPolicy", "default-deny", "hf-app") + split
    assert run(objects + _data(), _policies(tmp_path, "network-default-deny")).violations == []


# --- network-pod-isolation -----------------------------------------------------------------------

def test_pods_selected_only_by_an_egress_policy_are_not_isolated_for_ingress(tmp_path):
    objects = _without(_app(), "NetworkPolicy", "default-deny", "hf-app") + [obj(netpol("deny-egress", "hf-app", types=["Egress"]))]
    report = run(objects + _data(), _policies(tmp_path, "network-pod-isolation"))
    assert summary(report.violations) == [(
        "network-pod-isolation", "apps/Deployment/hf-app/prescription",
        "pods of Deployment prescription are not selected by any NetworkPolicy for Ingress, so all ingress traffic is allowed",
    )]


def test_policy_types_default_to_ingress_plus_egress_when_egress_rules_exist(tmp_path):
    # No policyTypes and egress rules: the API server sets [Ingress, Egress], so ingress is isolated too.
    implicit = netpol("dns-only", "hf-app", egress=DNS)
    objects = _without(_app(), "NetworkPolicy", "default-deny", "hf-app") + [obj(implicit)]
    objects = [o for o in objects if o.kind != "NetworkPolicy" or o.id.name == "dns-only"]
    assert run(objects, _policies(tmp_path, "network-pod-isolation")).violations == []


def test_policy_types_default_to_ingress_only_without_egress_rules(tmp_path):
    implicit = netpol("deny", "hf-app")
    objects = [o for o in _app() if o.kind != "NetworkPolicy"] + [obj(implicit)]
    report = run(objects, _policies(tmp_path, "network-pod-isolation"))
    assert [v.message for v in report.violations] == [
        "pods of Deployment prescription are not selected by any NetworkPolicy for Egress, so all egress traffic is allowed"
    ]


# --- network-undeclared-flow ---------------------------------------------------------------------

def test_an_allow_all_namespace_selector_peer_is_an_undeclared_flow(tmp_path):
    wide = netpol("postgres-wide", "hf-data", pods={"app.kubernetes.io/name": "postgres"}, types=["Ingress"],
                  ingress=[{"from": [{"namespaceSelector": {}}], "ports": tcp(5432)}])
    report = run(_app() + _data(wide), _policies(tmp_path, "network-undeclared-flow"))
    assert summary(report.violations) == [(
        "network-undeclared-flow", "networking.k8s.io/NetworkPolicy/hf-data/postgres-wide",
        "NetworkPolicy postgres-wide allows ingress every namespace (every pod) -> "
        "pods app.kubernetes.io/name=postgres in hf-data (stack data) on 5432/TCP, which is not an intended flow",
    )]


def test_a_rule_without_peers_allows_anywhere_and_is_undeclared(tmp_path):
    open_rule = netpol("open", "hf-data", types=["Ingress"], ingress=[{"ports": tcp(5432)}])
    report = run(_app() + _data(open_rule), _policies(tmp_path, "network-undeclared-flow"))
    assert [v.message for v in report.violations] == [
        "NetworkPolicy open allows ingress anywhere (allow-all peer: no from/to) -> hf-data (stack data) on 5432/TCP, "
        "which is not an intended flow"
    ]


def test_an_undeclared_cross_stack_flow_names_both_ends_and_the_port(tmp_path):
    back = netpol("from-data", "hf-app", types=["Ingress"], ingress=[{"from": [ns_peer("hf-data")], "ports": tcp(8080)}])
    report = run(_app() + [obj(back)] + _data(), _policies(tmp_path, "network-undeclared-flow"))
    assert summary(report.violations) == [(
        "network-undeclared-flow", "networking.k8s.io/NetworkPolicy/hf-app/from-data",
        "NetworkPolicy from-data allows ingress hf-data (stack data) -> hf-app (stack application) on 8080/TCP, "
        "which is not an intended flow",
    )]
    assert report.violations[0].stack == "application"


def test_a_declared_flow_on_another_port_is_undeclared(tmp_path):
    extra = netpol("to-mysql", "hf-app", types=["Egress"], egress=[{"to": [ns_peer("hf-data")], "ports": tcp(3306)}])
    report = run(_app() + [obj(extra)] + _data(), _policies(tmp_path, "network-undeclared-flow"))
    assert [v.message for v in report.violations] == [
        "NetworkPolicy to-mysql allows egress hf-app (stack application) -> hf-data (stack data) on 3306/TCP, which is not an intended flow"
    ]


def test_a_rule_without_ports_allows_all_ports_and_is_undeclared(tmp_path):
    extra = netpol("to-data", "hf-app", types=["Egress"], egress=[{"to": [ns_peer("hf-data")]}])
    report = run(_app() + [obj(extra)] + _data(), _policies(tmp_path, "network-undeclared-flow"))
    assert [v.message for v in report.violations] == [
        "NetworkPolicy to-data allows egress hf-app (stack application) -> hf-data (stack data) on all ports, which is not an intended flow"
    ]


def test_dns_to_all_of_kube_system_is_broader_than_the_kube_dns_endpoint(tmp_path):
    wide_dns = netpol("dns-wide", "hf-app", types=["Egress"],
                      egress=[{"to": [ns_peer("kube-system")], "ports": [{"protocol": "UDP", "port": 53}]}])
    report = run(_app() + [obj(wide_dns)] + _data(), _policies(tmp_path, "network-undeclared-flow"))
    assert [v.message for v in report.violations] == [
        "NetworkPolicy dns-wide allows egress hf-app (stack application) -> kube-system on 53/UDP, which is not an intended flow"
    ]


def test_intra_namespace_peers_are_not_cross_namespace_flows(tmp_path):
    local = netpol("replication", "hf-data", types=["Ingress"], ingress=[{"from": [{"podSelector": {}}], "ports": tcp(5432)}])
    assert run(_app() + _data(local), _policies(tmp_path, "network-undeclared-flow")).violations == []


def test_a_named_port_is_resolved_against_the_selected_pods(tmp_path):
    named = netpol("scrape", "hf-app", pods={"app.kubernetes.io/name": "prescription"}, types=["Ingress"],
                   ingress=[{"from": [ns_peer("hf-data")], "ports": [{"port": "http"}]}])
    flows = FLOWS + [{"from": "data", "to": "application", "ports": [8080]}]
    assert run(_app() + [obj(named)] + _data(), _policies(tmp_path, "network-undeclared-flow", flows=flows)).violations == []


def test_external_covers_an_ipblock_ingress_on_the_declared_ports(tmp_path):
    edge = netpol("edge", "hf-app", types=["Ingress"], ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": tcp(8000)}])
    flows = FLOWS + [{"from": "external", "to": "application", "ports": [8000]}]
    assert run(_app() + [obj(edge)] + _data(), _policies(tmp_path, "network-undeclared-flow", flows=flows)).violations == []


@pytest.mark.parametrize(("declared", "violations"), [("10.0.0.0/16", 0), ("192.168.0.0/16", 1)])
def test_an_ipblock_egress_must_lie_within_a_declared_cidr_endpoint(tmp_path, declared, violations):
    api = netpol("apiserver", "hf-app", types=["Egress"], egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": tcp(6443)}])
    endpoints = {**ENDPOINTS, "kube-apiserver": {"cidrs": [declared]}}
    flows = FLOWS + [{"from": "application", "to": "kube-apiserver", "ports": [6443]}]
    report = run(_app() + [obj(api)] + _data(), _policies(tmp_path, "network-undeclared-flow", flows=flows, endpoints=endpoints))
    assert len(report.violations) == violations


# --- network-intended-flow-missing ---------------------------------------------------------------

def test_a_declared_flow_that_no_policy_allows_is_reported_on_both_ends(tmp_path):
    flows = FLOWS + [{"from": "application", "to": "data", "ports": [3306]}]
    report = run(_app() + _data(), _policies(tmp_path, "network-intended-flow-missing", flows=flows))
    assert summary(report.violations) == [
        ("network-intended-flow-missing", "core/Namespace/-/hf-app",
         "intended flow application -> data on 3306/TCP is not allowed: no NetworkPolicy in hf-app allows egress to data on 3306/TCP"),
        ("network-intended-flow-missing", "core/Namespace/-/hf-data",
         "intended flow application -> data on 3306/TCP is not allowed: no NetworkPolicy in hf-data allows ingress from application on 3306/TCP"),
    ]


def test_a_declared_flow_missing_only_its_ingress_side_names_that_side(tmp_path):
    objects = _app() + _without(_data(), "NetworkPolicy", "postgres-from-app", "hf-data")
    report = run(objects, _policies(tmp_path, "network-intended-flow-missing"))
    assert [v.message for v in report.violations] == [
        "intended flow application -> data on 5432/TCP is not allowed: no NetworkPolicy in hf-data allows ingress from application on 5432/TCP"
    ]


def test_a_declared_dns_flow_without_egress_is_reported_for_every_stack(tmp_path):
    objects = _without(_app(), "NetworkPolicy", "allow-dns", "hf-app") + _data()
    report = run(objects, _policies(tmp_path, "network-intended-flow-missing"))
    assert [v.message for v in report.violations] == [
        "intended flow application -> kube-dns on 53/TCP is not allowed: no NetworkPolicy in hf-app allows egress to kube-dns on 53/TCP",
        "intended flow application -> kube-dns on 53/UDP is not allowed: no NetworkPolicy in hf-app allows egress to kube-dns on 53/UDP",
    ]


def test_declared_flows_to_stacks_the_environment_does_not_render_are_not_checked(tmp_path):
    flows = FLOWS + [{"from": "application", "to": "discovery", "ports": [8500]}]
    assert run(_app() + _data(), _policies(tmp_path, "network-intended-flow-missing", flows=flows)).violations == []
