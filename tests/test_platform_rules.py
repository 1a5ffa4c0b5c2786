"""Production rules, checked on the rendered prod manifests alone (no cluster).

These keep the platform honest until the policy engine makes the rules configurable: every prod
workload has probes, requests and limits, at least three replicas, required anti-affinity across
nodes, a zone spread, a PodDisruptionBudget, is isolated by a default-deny NetworkPolicy; the
NetworkPolicies allow exactly the flows of docs/CONTRACT.md; each stack fits its budget.

Each check is a small function returning the violations it finds, so that the last tests can
show the checks do fire on a manifest that breaks them.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import pytest
from kubernetes.utils import parse_quantity

from test_platform_render import (
    NAMESPACES,
    REPO_ROOT,
    STACKS,
    Obj,
    containers,
    hpa_for,
    ident,
    pod_labels,
    pod_requests,
    pod_spec,
    render,
    replica_count,
    selector_matches,
    workloads,
)

ENV = "prod"
MIN_REPLICAS = 3
STACK_OF_NAMESPACE = {ns: stack for stack, ns in NAMESPACES.items()}


# --------------------------------------------------------------------------------------------
# The contract: budgets parsed from docs/CONTRACT.md, flows transcribed from its table
# --------------------------------------------------------------------------------------------

class Budget(NamedTuple):
    cpu: Decimal
    memory: Decimal
    storage: Decimal


def contract_budgets(contract: Path = REPO_ROOT / "docs" / "CONTRACT.md") -> dict[str, Budget]:
    """The "Budgets" table of the contract, so a changed budget changes the test with it."""
    text = contract.read_text()
    section = text.split("## Budgets", 1)[1].split("\n## ", 1)[0]
    budgets = {}
    for row in re.findall(r"^\|\s*(\w+)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|$", section, re.M):
        stack, cpu, memory, storage = row
        if stack in STACKS:
            budgets[stack] = Budget(parse_quantity(cpu), parse_quantity(memory), parse_quantity(storage))
    assert set(budgets) == set(STACKS), f"budget table of {contract} lists {sorted(budgets)}"
    return budgets


class Flow(NamedTuple):
    source: str       # a stack, or "external"
    destination: str  # a stack, or "kube-apiserver" / "kube-dns"
    protocol: str
    port: int


def _flows(sources: list[str], destination: str, ports: list[int], protocols: tuple[str, ...] = ("TCP",)) -> set[Flow]:
    return {Flow(s, destination, proto, p) for s in sources for p in ports for proto in protocols}


# docs/CONTRACT.md, "Network isolation": intended cross-namespace flows.
CONTRACT_FLOWS: frozenset[Flow] = frozenset(
    _flows(["external"], "gateway", [8000, 8443])
    | _flows(["gateway"], "kube-apiserver", [443, 6443])
    | _flows(["gateway"], "application", [8080])
    | _flows(["application"], "data", [5432, 3306, 6379, 26379])
    | _flows(["application"], "discovery", [8500, 8200])
    | _flows(["monitoring"], "gateway", [9100])
    | _flows(["monitoring"], "discovery", [8500, 8200])
    | _flows(["monitoring"], "data", [9187, 9104, 9121])
    | _flows(["monitoring"], "application", [8080])
    | _flows(["gateway", "discovery", "data", "application"], "monitoring", [3100])
    | _flows(list(STACKS), "kube-dns", [53], ("UDP", "TCP"))
)


# --------------------------------------------------------------------------------------------
# Reading the rendered prod platform
# --------------------------------------------------------------------------------------------

def prod_objects() -> list[Obj]:
    return [obj for stack in STACKS for obj in render(ENV, stack)]


class PolicyEdge(NamedTuple):
    """One allowed cross-namespace (or external) flow, as seen from one side."""
    side: str  # "egress" at the source or "ingress" at the destination
    flow: Flow
    policy: str


def _peer_endpoint(peer: Obj, own_stack: str) -> str | None:
    """Which contract endpoint a NetworkPolicy peer names; None for same-namespace peers.
    Anything broader than one namespace by name is returned as "anywhere"."""
    if "ipBlock" in peer:
        return "ipBlock"
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is None:
        return None  # podSelector alone: the policy's own namespace
    name = (ns_selector.get("matchLabels") or {}).get("kubernetes.io/metadata.name")
    if name is None or ns_selector.get("matchExpressions"):
        return "anywhere"
    if name == "kube-system" and selector_matches(peer.get("podSelector"), {"k8s-app": "kube-dns"}) \
            and (peer.get("podSelector") or {}).get("matchLabels"):
        return "kube-dns"
    if name in STACK_OF_NAMESPACE:
        return None if STACK_OF_NAMESPACE[name] == own_stack else STACK_OF_NAMESPACE[name]
    return f"namespace {name}"


def _rule_ports(rule: Obj) -> Iterator[tuple[str, int | str]]:
    ports = rule.get("ports")
    if not ports:
        yield "ANY", "any port"
        return
    for port in ports:
        yield port.get("protocol", "TCP"), port.get("port", "any port")


def policy_edges(policies: list[Obj]) -> list[PolicyEdge]:
    """Every cross-namespace flow the given NetworkPolicies allow, with the side allowing it."""
    edges = []
    for policy in policies:
        stack = STACK_OF_NAMESPACE[policy["metadata"]["namespace"]]
        name = ident(policy)
        for side, key, peers_key in (("ingress", "ingress", "from"), ("egress", "egress", "to")):
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                endpoints = [_peer_endpoint(p, stack) for p in peers] if peers else ["anywhere"]
                for endpoint in endpoints:
                    if endpoint is None:
                        continue
                    if endpoint == "ipBlock":
                        endpoint = "external" if side == "ingress" else "kube-apiserver"
                    for protocol, port in _rule_ports(rule):
                        flow = Flow(endpoint, stack, protocol, port) if side == "ingress" \
                            else Flow(stack, endpoint, protocol, port)
                        edges.append(PolicyEdge(side, flow, name))
    return edges


def network_policies(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] == "NetworkPolicy"]


# --------------------------------------------------------------------------------------------
# The checks (each returns its violations)
# --------------------------------------------------------------------------------------------

def missing_probes(workload: Obj) -> list[str]:
    return [f"{c['name']} has no {probe}" for c in containers(workload)
            for probe in ("livenessProbe", "readinessProbe") if not c.get(probe)]


def missing_resources(workload: Obj) -> list[str]:
    return [f"{c['name']} has no {kind}.{res}" for c in containers(workload)
            for kind in ("requests", "limits") for res in ("cpu", "memory")
            if res not in c.get("resources", {}).get(kind, {})]


def too_few_replicas(workload: Obj, objs: list[Obj]) -> list[str]:
    if workload["kind"] == "DaemonSet":
        return []  # one per node by construction
    count = replica_count(workload, objs)
    return [] if count >= MIN_REPLICAS else [f"runs {count} replicas (HPA floor or spec.replicas)"]


def missing_required_anti_affinity(workload: Obj) -> list[str]:
    """A required podAntiAffinity term on the hostname whose selector matches the workload's
    own pods: no two replicas share a node."""
    terms = pod_spec(workload).get("affinity", {}).get("podAntiAffinity", {}) \
        .get("requiredDuringSchedulingIgnoredDuringExecution", [])
    own = pod_labels(workload)
    if any(t.get("topologyKey") == "kubernetes.io/hostname" and selector_matches(t.get("labelSelector"), own)
           for t in terms):
        return []
    return ["no required pod anti-affinity on kubernetes.io/hostname selecting its own pods"]


def missing_zone_spread(workload: Obj) -> list[str]:
    own = pod_labels(workload)
    for constraint in pod_spec(workload).get("topologySpreadConstraints", []):
        if constraint.get("topologyKey") == "topology.kubernetes.io/zone" \
                and selector_matches(constraint.get("labelSelector"), own):
            return []
    return ["no topologySpreadConstraint on topology.kubernetes.io/zone selecting its own pods"]


def missing_disruption_budget(workload: Obj, objs: list[Obj]) -> list[str]:
    """A PDB selecting the pods that still allows at least one voluntary disruption."""
    replicas = replica_count(workload, objs)
    for pdb in objs:
        if pdb["kind"] != "PodDisruptionBudget" \
                or pdb["metadata"].get("namespace") != workload["metadata"].get("namespace") \
                or not selector_matches(pdb["spec"].get("selector"), pod_labels(workload)):
            continue
        spec = pdb["spec"]
        if "maxUnavailable" in spec:
            allowed = _resolve(spec["maxUnavailable"], replicas, round_up=True)
        else:
            allowed = replicas - _resolve(spec.get("minAvailable", 0), replicas, round_up=True)
        return [] if allowed >= 1 else [f"{ident(pdb)} allows no disruption at {replicas} replicas"]
    return ["no PodDisruptionBudget selects its pods"]


def _resolve(value: int | str, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = Decimal(value[:-1]) * total / 100
        return int(exact.to_integral_value(rounding="ROUND_CEILING" if round_up else "ROUND_FLOOR"))
    return int(value)


def not_default_denied(workload: Obj, objs: list[Obj]) -> list[str]:
    """Selected by a policy named default-deny that denies both directions with no rules."""
    for policy in network_policies(objs):
        spec = policy["spec"]
        if policy["metadata"]["name"] == "default-deny" \
                and policy["metadata"].get("namespace") == workload["metadata"].get("namespace") \
                and selector_matches(spec.get("podSelector"), pod_labels(workload)) \
                and set(spec.get("policyTypes", [])) == {"Ingress", "Egress"} \
                and not spec.get("ingress") and not spec.get("egress"):
            return []
    return ["not selected by a default-deny NetworkPolicy (Ingress and Egress, no rules)"]


class Usage(NamedTuple):
    cpu: Decimal
    memory: Decimal
    storage: Decimal


def stack_usage(objs: list[Obj], at_hpa_ceiling: bool = False) -> Usage:
    """Summed requests x replicas and claimed storage (PVCs, volumeClaimTemplates x replicas)."""
    cpu = memory = storage = Decimal(0)
    for w in workloads(objs):
        hpa = hpa_for(w, objs)
        replicas = int(hpa["spec"]["maxReplicas"]) if at_hpa_ceiling and hpa else replica_count(w, objs)
        pod_cpu, pod_memory = pod_requests(w)
        cpu += replicas * pod_cpu
        memory += replicas * pod_memory
        for template in w["spec"].get("volumeClaimTemplates", []):
            storage += replicas * parse_quantity(template["spec"]["resources"]["requests"]["storage"])
    for claim in (o for o in objs if o["kind"] == "PersistentVolumeClaim"):
        storage += parse_quantity(claim["spec"]["resources"]["requests"]["storage"])
    return Usage(cpu, memory, storage)


def _gi(value: Decimal) -> str:
    return f"{value / 2**30:.2f}Gi"


# --------------------------------------------------------------------------------------------
# Specifications: workloads
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def objs() -> list[Obj]:
    return prod_objects()


def _violations(check: Callable[..., list[str]], objs: list[Obj], with_objs: bool = False) -> list[str]:
    found = []
    for w in workloads(objs):
        problems = check(w, objs) if with_objs else check(w)
        found += [f"{ident(w)}: {p}" for p in problems]
    return found


def test_prod_renders_workloads_in_every_stack(objs: list[Obj]) -> None:
    stacks = {w["spec"]["template"]["metadata"]["labels"]["healthflow.io/stack"] for w in workloads(objs)}
    assert stacks == set(STACKS)


def test_every_prod_container_has_liveness_and_readiness_probes(objs: list[Obj]) -> None:
    assert not _violations(missing_probes, objs)


def test_every_prod_container_sets_cpu_and_memory_requests_and_limits(objs: list[Obj]) -> None:
    assert not _violations(missing_resources, objs)


def test_every_prod_workload_runs_at_least_three_replicas(objs: list[Obj]) -> None:
    assert not _violations(too_few_replicas, objs, with_objs=True)


def test_every_prod_workload_requires_anti_affinity_across_nodes(objs: list[Obj]) -> None:
    assert not _violations(missing_required_anti_affinity, objs)


def test_every_prod_workload_spreads_over_zones(objs: list[Obj]) -> None:
    assert not _violations(missing_zone_spread, objs)


def test_every_prod_workload_has_a_pdb_allowing_a_disruption(objs: list[Obj]) -> None:
    assert not _violations(missing_disruption_budget, objs, with_objs=True)


def test_every_prod_workload_is_selected_by_a_default_deny_policy(objs: list[Obj]) -> None:
    assert not _violations(not_default_denied, objs, with_objs=True)


def test_every_prod_application_service_scales_with_an_hpa_from_three() -> None:
    app = render(ENV, "application")
    floors = {ident(w): (hpa_for(w, app) or {}).get("spec", {}).get("minReplicas") for w in workloads(app)}
    assert floors and all(floor is not None and floor >= MIN_REPLICAS for floor in floors.values()), floors


# --------------------------------------------------------------------------------------------
# Specifications: budgets
# --------------------------------------------------------------------------------------------

BUDGETS = contract_budgets()


@pytest.mark.parametrize("stack", STACKS)
def test_prod_stack_cpu_requests_fit_the_budget(stack: str) -> None:
    usage = stack_usage(render(ENV, stack))
    assert usage.cpu <= BUDGETS[stack].cpu, f"{stack} requests {usage.cpu} CPU, budget {BUDGETS[stack].cpu}"


@pytest.mark.parametrize("stack", STACKS)
def test_prod_stack_memory_requests_fit_the_budget(stack: str) -> None:
    usage = stack_usage(render(ENV, stack))
    assert usage.memory <= BUDGETS[stack].memory, \
        f"{stack} requests {_gi(usage.memory)}, budget {_gi(BUDGETS[stack].memory)}"


@pytest.mark.parametrize("stack", STACKS)
def test_prod_stack_storage_claims_fit_the_budget(stack: str) -> None:
    usage = stack_usage(render(ENV, stack))
    assert usage.storage <= BUDGETS[stack].storage, \
        f"{stack} claims {_gi(usage.storage)}, budget {_gi(BUDGETS[stack].storage)}"


def test_prod_application_fits_its_budget_even_at_every_hpa_ceiling() -> None:
    """The budget is what the stack may claim, so scaling out must not break it either."""
    usage = stack_usage(render(ENV, "application"), at_hpa_ceiling=True)
    budget = BUDGETS["application"]
    assert usage.cpu <= budget.cpu and usage.memory <= budget.memory, \
        f"at maxReplicas: {usage.cpu} CPU, {_gi(usage.memory)}"


# --------------------------------------------------------------------------------------------
# Specifications: network isolation
# --------------------------------------------------------------------------------------------

def test_every_prod_namespace_has_the_default_deny_policy(objs: list[Obj]) -> None:
    denied = {p["metadata"]["namespace"] for p in network_policies(objs) if p["metadata"]["name"] == "default-deny"
              and p["spec"].get("podSelector") == {}}
    assert denied == set(NAMESPACES.values())


def test_prod_network_policies_allow_no_flow_beyond_the_contract(objs: list[Obj]) -> None:
    extra = sorted({f"{e.side} {e.flow} ({e.policy})" for e in policy_edges(network_policies(objs))
                    if e.flow not in CONTRACT_FLOWS})
    assert not extra


def test_every_contract_flow_is_allowed_where_it_leaves_and_where_it_arrives(objs: list[Obj]) -> None:
    """Egress at the source and ingress at the destination, for the ends that are ours
    (external clients have no egress policy, kube-apiserver and kube-dns no ingress policy)."""
    edges = policy_edges(network_policies(objs))
    egress = {e.flow for e in edges if e.side == "egress"}
    ingress = {e.flow for e in edges if e.side == "ingress"}
    missing = []
    for flow in sorted(CONTRACT_FLOWS):
        if flow.source in STACKS and flow not in egress:
            missing.append(f"egress {flow}")
        if flow.destination in STACKS and flow not in ingress:
            missing.append(f"ingress {flow}")
    assert not missing


# --------------------------------------------------------------------------------------------
# The checks fire: a prod workload broken on purpose is caught by each of them
# --------------------------------------------------------------------------------------------

def _broken_copy(mutate: Callable[[Obj], None]) -> tuple[Obj, list[Obj]]:
    objs = copy.deepcopy(render(ENV, "application"))
    target = next(w for w in workloads(objs) if w["metadata"]["name"] == "prescription-service")
    mutate(target)
    return target, objs


def _drop_probe(w: Obj) -> None:
    del containers(w)[0]["readinessProbe"]


def _drop_limits(w: Obj) -> None:
    del containers(w)[0]["resources"]["limits"]


def _soften_anti_affinity(w: Obj) -> None:
    anti = pod_spec(w)["affinity"]["podAntiAffinity"]
    terms = anti.pop("requiredDuringSchedulingIgnoredDuringExecution")
    anti["preferredDuringSchedulingIgnoredDuringExecution"] = [{"weight": 100, "podAffinityTerm": terms[0]}]


def _select_someone_else(w: Obj) -> None:
    pod_spec(w)["topologySpreadConstraints"][0]["labelSelector"] = {"matchLabels": {"app.kubernetes.io/name": "x"}}


def _relabel_pods(w: Obj) -> None:
    w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] = "renamed"


@pytest.mark.parametrize(("mutate", "check"), [
    (_drop_probe, lambda w, objs: missing_probes(w)),
    (_drop_limits, lambda w, objs: missing_resources(w)),
    (_soften_anti_affinity, lambda w, objs: missing_required_anti_affinity(w)),
    (_select_someone_else, lambda w, objs: missing_zone_spread(w)),
    (_relabel_pods, missing_disruption_budget),
], ids=["probes", "limits", "anti-affinity", "zone-spread", "pdb"])
def test_each_workload_check_flags_a_workload_that_breaks_it(
    mutate: Callable[[Obj], None], check: Callable[[Obj, list[Obj]], list[str]]
) -> None:
    target, objs = _broken_copy(mutate)
    assert check(target, objs)


def test_the_replica_check_flags_an_hpa_floor_below_three() -> None:
    def lower_floor(objs: list[Obj]) -> None:
        next(o for o in objs if o["kind"] == "HorizontalPodAutoscaler")["spec"]["minReplicas"] = 2
    objs = copy.deepcopy(render(ENV, "application"))
    lower_floor(objs)
    assert any(too_few_replicas(w, objs) for w in workloads(objs))


def test_the_flow_check_flags_a_policy_opening_another_port() -> None:
    objs = copy.deepcopy(render(ENV, "data"))
    policy = next(p for p in network_policies(objs) if p["metadata"]["name"] == "postgres-ingress")
    policy["spec"]["ingress"][0]["ports"].append({"protocol": "TCP", "port": 22})
    assert Flow("application", "data", "TCP", 22) in {e.flow for e in policy_edges([policy])}
    assert Flow("application", "data", "TCP", 22) not in CONTRACT_FLOWS


def test_the_budget_check_counts_volume_claims_per_replica() -> None:
    objs = render(ENV, "data")
    postgres = next(w for w in workloads(objs) if w["metadata"]["name"] == "postgres")
    alone = stack_usage([postgres]).storage
    assert alone == 3 * parse_quantity(postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"])
