"""Network isolation: four rules over the environment's NetworkPolicies.

- network-default-deny: every namespace the environment deploys has a policy selecting all pods
  (`podSelector: {}`) with no rules, for Ingress and for Egress (one or two policies).
- network-pod-isolation: every workload's pods are selected by at least one policy of each
  direction (taking `policyTypes` and its API default into account).
- network-undeclared-flow: every cross-namespace flow half a policy allows (peer x port) lies
  within an intended flow of `policies/network.yaml`.
- network-intended-flow-missing: every intended flow is allowed by the egress of its source and the
  ingress of its destination, for the ends this environment renders.
"""

from __future__ import annotations

from typing import Iterator

from reconciler.objects import K8sObject
from reconciler.policy import selectors
from reconciler.policy.rules.base import Family, Finding, RuleSpec
from reconciler.policy.rules.network_config import DeclaredEndpoint, IntendedFlow, Settings, parse_settings
from reconciler.policy.rules.network_flows import (
    EGRESS,
    INGRESS,
    FlowAnalysis,
    FlowHalf,
    admits,
    policy_types,
    port_admits,
    port_within,
    within,
)
from reconciler.policy.view import EnvironmentView, Subject

DEFAULT_DENY = "network-default-deny"
POD_ISOLATION = "network-pod-isolation"
UNDECLARED = "network-undeclared-flow"
MISSING = "network-intended-flow-missing"
DECLARATIONS = "policies/network.yaml intended_flows"


def check(view: EnvironmentView, settings: Settings) -> Iterator[Finding]:
    policies = view.of_kind("NetworkPolicy")
    namespaces = [ns for ns in view.namespaces if ns not in settings.exclude_namespaces]
    yield from _default_deny(view, policies, namespaces)
    yield from _pod_isolation(view, policies, namespaces)
    halves = list(FlowAnalysis(view, settings).halves())
    yield from _undeclared(halves, settings)
    yield from _missing(view, policies, halves, settings)


def _default_deny(view: EnvironmentView, policies: list[K8sObject], namespaces: list[str]) -> Iterator[Finding]:
    for namespace in namespaces:
        missing = [d for d in (INGRESS, EGRESS) if not any(_denies_all(p, d) for p in policies if p.id.namespace == namespace)]
        if missing:
            info = view.namespaces[namespace]
            yield Finding(
                DEFAULT_DENY, info.subject,
                f"namespace {namespace} has no default-deny NetworkPolicy for {' and '.join(missing)}",
                "add a NetworkPolicy default-deny with podSelector: {}, policyTypes: [Ingress, Egress] and no rules",
            )


def _denies_all(policy: K8sObject, direction: str) -> bool:
    spec = policy.manifest.get("spec") or {}
    key = "ingress" if direction == INGRESS else "egress"
    return selectors.is_empty(spec.get("podSelector")) and direction in policy_types(spec) and not spec.get(key)


def _pod_isolation(view: EnvironmentView, policies: list[K8sObject], namespaces: list[str]) -> Iterator[Finding]:
    for workload in view.workloads:
        if workload.namespace not in namespaces:
            continue
        local = [p for p in policies if p.id.namespace == workload.namespace
                 and selectors.matches((p.manifest.get("spec") or {}).get("podSelector") or {}, workload.pod_labels)]
        missing = [d for d in (INGRESS, EGRESS) if not any(d in policy_types(p.manifest.get("spec") or {}) for p in local)]
        if missing:
            yield Finding(
                POD_ISOLATION, Subject.of(workload.obj),
                f"pods of {workload.kind} {workload.name} are not selected by any NetworkPolicy for {' and '.join(missing)}, "
                f"so all {' and '.join(m.lower() for m in missing)} traffic is allowed",
                f"select the pods with a NetworkPolicy whose policyTypes include {' and '.join(missing)} (a default-deny does)",
            )


def _undeclared(halves: list[FlowHalf], settings: Settings) -> Iterator[Finding]:
    seen: set[tuple[str, str]] = set()
    for half in halves:
        if _declared(half, settings.flows):
            continue
        message = (
            f"NetworkPolicy {half.policy.id.name} allows {half.direction.lower()} "
            f"{half.source.describe()} -> {half.dest.describe()} on {half.port.describe()}, which is not an intended flow"
        )
        key = (str(half.policy.id), message)
        if key in seen:
            continue
        seen.add(key)
        yield Finding(
            UNDECLARED, Subject.of(half.policy), message,
            f"narrow the NetworkPolicy to the intended peers and ports, or declare the flow in {DECLARATIONS}",
        )


def _declared(half: FlowHalf, flows: tuple[IntendedFlow, ...]) -> bool:
    return any(
        within(half.source, flow.source) and within(half.dest, flow.dest) and port_within(half.port, flow.ports)
        for flow in flows
    )


def _missing(view: EnvironmentView, policies: list[K8sObject], halves: list[FlowHalf], settings: Settings) -> Iterator[Finding]:
    isolated = {d: {p.id.namespace for p in policies if d in policy_types(p.manifest.get("spec") or {})} for d in (INGRESS, EGRESS)}
    for flow in _concrete(view, settings.flows):
        ports = sorted(flow.ports or {("*", 0)}, key=lambda p: (p[1], p[0]))
        for protocol, number in ports:
            for side, end, other in ((EGRESS, flow.source, flow.dest), (INGRESS, flow.dest, flow.source)):
                if end.kind != "stack":
                    continue  # outside the environment: nothing here to check
                for namespace in _namespaces_of(view, end.name):
                    if namespace not in isolated[side] or _allowed(halves, side, namespace, other, protocol, number):
                        continue
                    yield _missing_finding(view, flow, side, namespace, protocol, number)


def _concrete(view: EnvironmentView, flows: tuple[IntendedFlow, ...]) -> Iterator[IntendedFlow]:
    """Intended flows with `any-stack` expanded and ends this environment does not render dropped."""
    rendered = set(view.stack_names)
    for flow in flows:
        sources = [DeclaredEndpoint(s, "stack") for s in view.stack_names] if flow.source.kind == "any-stack" else [flow.source]
        for source in sources:
            if source.kind == "stack" and flow.dest.kind == "stack" and source.name == flow.dest.name:
                continue
            ends = [e for e in (source, flow.dest) if e.kind == "stack"]
            if ends and all(e.name in rendered for e in ends):
                yield IntendedFlow(source, flow.dest, flow.ports)


def _namespaces_of(view: EnvironmentView, stack: str) -> list[str]:
    return sorted(ns for ns, info in view.namespaces.items() if info.stack == stack)


def _allowed(halves: list[FlowHalf], side: str, namespace: str, other: DeclaredEndpoint, protocol: str, number: int) -> bool:
    return any(
        h.direction == side and h.local.namespace == namespace and admits(h.peer, other)
        and (number == 0 or port_admits(h.port, protocol, number))
        for h in halves
    )


def _missing_finding(view: EnvironmentView, flow: IntendedFlow, side: str, namespace: str, protocol: str, number: int) -> Finding:
    port = "any port" if number == 0 else f"{number}/{protocol}"
    peer = flow.dest.name if side == EGRESS else flow.source.name
    return Finding(
        MISSING, view.namespaces[namespace].subject,
        f"intended flow {flow.source.name} -> {flow.dest.name} on {port} is not allowed: "
        f"no NetworkPolicy in {namespace} allows {side.lower()} {'to' if side == EGRESS else 'from'} {peer} on {port}",
        f"add an {side.lower()} rule for {peer} on {port} to a NetworkPolicy in {namespace}, or remove the flow from {DECLARATIONS}",
    )


FAMILY = Family(
    name="network",
    rules=(
        RuleSpec(DEFAULT_DENY, "Every namespace has a default-deny NetworkPolicy for Ingress and Egress.", "critical"),
        RuleSpec(POD_ISOLATION, "Every workload is selected by a NetworkPolicy for Ingress and for Egress.", "high"),
        RuleSpec(UNDECLARED, "Every cross-namespace flow a NetworkPolicy allows is a declared intended flow.", "high"),
        RuleSpec(MISSING, "Every declared intended flow is allowed by the NetworkPolicies of both ends.", "medium"),
    ),
    parse_settings=parse_settings,
    check=check,
)
