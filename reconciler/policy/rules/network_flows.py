"""What the rendered NetworkPolicies allow across namespaces, as flow halves.

A cross-namespace connection needs two halves: the source namespace's egress and the destination
namespace's ingress. Each rule peer of each policy yields one half (local pods, peer, port); the
network rules compare these halves with the intended flows of `policies/network.yaml`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from reconciler.objects import K8sObject
from reconciler.policy import selectors
from reconciler.policy.rules.network_config import DeclaredEndpoint, IPNetwork, Settings
from reconciler.policy.view import METADATA_NAME_LABEL, EnvironmentView

INGRESS, EGRESS = "Ingress", "Egress"


@dataclass(frozen=True)
class Peer:
    """One end as a policy sees it."""

    kind: str  # "anywhere" | "any-namespace" | "namespace" | "ipblock" | "unresolved"
    text: str
    namespace: str | None = None
    stack: str | None = None
    pods: tuple[tuple[str, str], ...] | None = None  # matchLabels of the pod selector; None: every pod
    narrowed: bool = False  # the pod selector also has matchExpressions
    cidr: IPNetwork | None = None

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class PortSpec:
    protocol: str
    port: int | str | None  # None: every port; str: a named port we could not resolve
    end: int | None = None

    def describe(self) -> str:
        if self.port is None:
            return f"all {self.protocol} ports" if self.protocol != "*" else "all ports"
        if self.end is not None:
            return f"{self.port}-{self.end}/{self.protocol}"
        return f"{self.port}/{self.protocol}"

    def numbers(self) -> range | None:
        if isinstance(self.port, int):
            return range(self.port, (self.end or self.port) + 1)
        return None


@dataclass(frozen=True)
class FlowHalf:
    direction: str
    policy: K8sObject
    local: Peer
    peer: Peer
    port: PortSpec

    @property
    def source(self) -> Peer:
        return self.peer if self.direction == INGRESS else self.local

    @property
    def dest(self) -> Peer:
        return self.local if self.direction == INGRESS else self.peer


def policy_types(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """`policyTypes` as the API server defaults it: Ingress always, Egress when egress rules exist."""
    if spec.get("policyTypes"):
        return tuple(spec["policyTypes"])
    return (INGRESS, EGRESS) if "egress" in spec else (INGRESS,)


class FlowAnalysis:
    """Turns every NetworkPolicy of the environment into cross-namespace flow halves."""

    def __init__(self, view: EnvironmentView, settings: Settings) -> None:
        self.view = view
        self.settings = settings
        self._universe = self._namespace_universe()

    def halves(self) -> Iterator[FlowHalf]:
        for policy in self.view.of_kind("NetworkPolicy"):
            yield from self._policy_halves(policy)

    def _policy_halves(self, policy: K8sObject) -> Iterator[FlowHalf]:
        spec = policy.manifest.get("spec") or {}
        namespace = policy.id.namespace
        local_selector = spec.get("podSelector") or {}
        local = self._namespace_peer(namespace, local_selector)
        for direction in policy_types(spec):
            key, peers_key = ("ingress", "from") if direction == INGRESS else ("egress", "to")
            for rule in spec.get(key) or []:
                rule = rule or {}
                peers = list(self._peers(rule.get(peers_key), namespace)) if rule.get(peers_key) else [_ANYWHERE]
                for peer in peers:
                    if peer.kind == "namespace" and peer.namespace == namespace:
                        continue  # intra-namespace: allowed per need, not a cross-namespace flow
                    pods_ns, pods_sel = (namespace, local_selector) if direction == INGRESS else (peer.namespace, _selector(peer))
                    for port in self._ports(rule.get("ports"), pods_ns, pods_sel):
                        yield FlowHalf(direction, policy, local, peer, port)

    def _peers(self, raw_peers: list[Any], namespace: str) -> Iterator[Peer]:
        for raw in raw_peers:
            raw = raw or {}
            if "ipBlock" in raw:
                yield _ipblock_peer(raw["ipBlock"] or {})
            elif "namespaceSelector" in raw:
                yield from self._namespace_selector_peers(raw["namespaceSelector"] or {}, raw.get("podSelector") or {})
            else:
                yield self._namespace_peer(namespace, raw.get("podSelector") or {})

    def _namespace_selector_peers(self, ns_selector: Mapping[str, Any], pod_selector: Mapping[str, Any]) -> Iterator[Peer]:
        pods, narrowed = _pod_labels(pod_selector)
        if selectors.is_empty(ns_selector):
            yield Peer("any-namespace", f"every namespace ({_pods_text(pod_selector)})", pods=pods, narrowed=narrowed)
            return
        matched = [ns for ns, labels in self._universe.items() if selectors.matches(ns_selector, labels)]
        if not matched:
            yield Peer("unresolved", f"namespaces matching {selectors.describe(ns_selector)} (none rendered or declared)")
        for namespace in matched:
            yield self._namespace_peer(namespace, pod_selector)

    def _namespace_peer(self, namespace: str, pod_selector: Mapping[str, Any]) -> Peer:
        stack = self.view.stack_of_namespace(namespace)
        pods, narrowed = _pod_labels(pod_selector)
        owner = f" (stack {stack})" if stack else ""
        pods_text = "" if selectors.is_empty(pod_selector) else f"pods {selectors.describe(pod_selector)} in "
        return Peer("namespace", f"{pods_text}{namespace}{owner}", namespace=namespace, stack=stack, pods=pods, narrowed=narrowed)

    def _namespace_universe(self) -> dict[str, dict[str, str]]:
        """Namespaces a selector can pick: rendered ones, declared endpoints', and ones named by metadata.name."""
        universe = {name: dict(info.labels) for name, info in self.view.namespaces.items()}
        named = [e.namespace for e in self.settings.endpoints.values() if e.namespace]
        for policy in self.view.of_kind("NetworkPolicy"):
            named.extend(_named_namespaces(policy.manifest.get("spec") or {}))
        for name in named:
            universe.setdefault(name, {METADATA_NAME_LABEL: name})
        return universe

    def _ports(self, raw_ports: list[Any] | None, namespace: str | None, pod_selector: Mapping[str, Any] | None) -> Iterator[PortSpec]:
        if not raw_ports:
            yield PortSpec("*", None)
            return
        for raw in raw_ports:
            protocol = str(raw.get("protocol") or "TCP")
            port = raw.get("port")
            if port is None:
                yield PortSpec(protocol, None)
            elif isinstance(port, int) or str(port).isdigit():
                yield PortSpec(protocol, int(port), raw.get("endPort"))
            else:
                numbers = self._named_port(str(port), protocol, namespace, pod_selector)
                yield from (PortSpec(protocol, n) for n in numbers) if numbers else [PortSpec(protocol, str(port))]

    def _named_port(self, name: str, protocol: str, namespace: str | None, pod_selector: Mapping[str, Any] | None) -> list[int]:
        """Resolve a named port against the container ports of the pods it is meant for."""
        if namespace is None or pod_selector is None:
            return []
        numbers = set()
        for workload in self.view.workloads_in(namespace):
            if not selectors.matches(pod_selector, workload.pod_labels):
                continue
            for container in workload.containers():
                for port in container.spec.get("ports") or []:
                    if port.get("name") == name and str(port.get("protocol") or "TCP") == protocol:
                        numbers.add(int(port["containerPort"]))
        return sorted(numbers)


_ANYWHERE = Peer("anywhere", "anywhere (allow-all peer: no from/to)")


def _selector(peer: Peer) -> Mapping[str, Any] | None:
    if peer.kind != "namespace" or peer.pods is None:
        return None
    return {"matchLabels": dict(peer.pods)}


def _pod_labels(selector: Mapping[str, Any]) -> tuple[tuple[tuple[str, str], ...], bool]:
    labels = tuple(sorted((str(k), str(v)) for k, v in (selector.get("matchLabels") or {}).items()))
    return labels, bool(selector.get("matchExpressions"))


def _pods_text(selector: Mapping[str, Any]) -> str:
    return "every pod" if selectors.is_empty(selector) else f"pods {selectors.describe(selector)}"


def _ipblock_peer(block: Mapping[str, Any]) -> Peer:
    cidr_text = str(block.get("cidr", ""))
    try:
        cidr: IPNetwork | None = ipaddress.ip_network(cidr_text, strict=False)
    except ValueError:
        cidr = None
    excepted = f" except {', '.join(block['except'])}" if block.get("except") else ""
    return Peer("ipblock", f"ipBlock {cidr_text}{excepted}", cidr=cidr)


def _named_namespaces(spec: Mapping[str, Any]) -> Iterator[str]:
    for key, peers_key in (("ingress", "from"), ("egress", "to")):
        for rule in spec.get(key) or []:
            for peer in (rule or {}).get(peers_key) or []:
                ns_selector = (peer or {}).get("namespaceSelector") or {}
                name = (ns_selector.get("matchLabels") or {}).get(METADATA_NAME_LABEL)
                if name:
                    yield str(name)
                for expr in ns_selector.get("matchExpressions") or []:
                    if expr.get("key") == METADATA_NAME_LABEL and expr.get("operator") == "In":
                        yield from (str(v) for v in expr.get("values") or [])


def within(peer: Peer, declared: DeclaredEndpoint) -> bool:
    """The peer is no broader than the declared endpoint: every address it admits is declared."""
    if declared.kind == "stack":
        return peer.kind == "namespace" and peer.stack == declared.name
    if declared.kind == "any-stack":
        return peer.kind == "namespace" and peer.stack is not None
    if declared.kind == "external":
        return peer.kind in ("anywhere", "ipblock")
    if declared.kind == "namespace":
        return (
            peer.kind == "namespace"
            and peer.namespace == declared.namespace
            and peer.pods is not None
            and set(declared.pods) <= set(peer.pods)
        )
    if declared.kind == "cidrs":
        return peer.kind == "ipblock" and peer.cidr is not None and any(
            peer.cidr.version == c.version and peer.cidr.subnet_of(c) for c in declared.cidrs  # type: ignore[arg-type]
        )
    return False


def admits(peer: Peer, declared: DeclaredEndpoint) -> bool:
    """The peer lets through at least part of the declared endpoint."""
    if peer.kind == "anywhere":
        return True
    if peer.kind == "ipblock":
        return declared.kind == "external" or (
            declared.kind == "cidrs" and peer.cidr is not None and any(peer.cidr.version == c.version and peer.cidr.overlaps(c) for c in declared.cidrs)
        )
    if peer.kind == "any-namespace":
        return declared.kind in ("stack", "any-stack") or (declared.kind == "namespace" and _pods_admit(peer, declared))
    if peer.kind == "namespace":
        if declared.kind == "stack":
            return peer.stack == declared.name
        return declared.kind == "namespace" and peer.namespace == declared.namespace and _pods_admit(peer, declared)
    return False


def _pods_admit(peer: Peer, declared: DeclaredEndpoint) -> bool:
    return selectors.matches({"matchLabels": dict(peer.pods or ())}, dict(declared.pods))


def port_within(port: PortSpec, declared: frozenset[tuple[str, int]] | None) -> bool:
    if declared is None:
        return True
    numbers = port.numbers()
    if numbers is None or port.protocol == "*":
        return False
    return all((port.protocol, n) in declared for n in numbers)


def port_admits(port: PortSpec, protocol: str, number: int) -> bool:
    if port.protocol not in ("*", protocol):
        return False
    numbers = port.numbers()
    return port.port is None or (numbers is not None and number in numbers)
