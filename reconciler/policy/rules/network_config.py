"""The intended cross-namespace flows declared in `policies/network.yaml`, parsed and validated.

Kept apart from the flow analysis so the declaration format (documented in docs/policies.md) can be
read and tested on its own.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

from reconciler.errors import ConfigError
from reconciler.policy.fields import Fields

EXTERNAL = "external"
ANY_STACK = "any-stack"
PROTOCOLS = ("TCP", "UDP", "SCTP")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class DeclaredEndpoint:
    """One end of an intended flow: a stack, `external`, `any-stack`, or a named endpoint."""

    name: str
    kind: str  # "stack" | "external" | "any-stack" | "namespace" | "cidrs"
    namespace: str | None = None
    pods: tuple[tuple[str, str], ...] = ()
    cidrs: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True)
class IntendedFlow:
    source: DeclaredEndpoint
    dest: DeclaredEndpoint
    ports: frozenset[tuple[str, int]] | None  # None: any port


@dataclass(frozen=True)
class Settings:
    endpoints: Mapping[str, DeclaredEndpoint]
    flows: tuple[IntendedFlow, ...]
    exclude_namespaces: tuple[str, ...]


def parse_settings(fields: Fields) -> Settings:
    endpoints_fields = fields.mapping("endpoints")
    endpoints = {str(name): _parse_endpoint(str(name), endpoints_fields.mapping(str(name))) for name in list(endpoints_fields.raw)}
    endpoints_fields.finish()
    raw_flows = fields.get("intended_flows", [])
    if not isinstance(raw_flows, list):
        raise fields.error("intended_flows", "expected a list", "write `intended_flows: [{from: a, to: b, ports: [8080]}]`")
    flows: list[IntendedFlow] = []
    for index, raw in enumerate(raw_flows):
        flows.extend(_parse_flow(Fields(raw, fields.file, fields.path(f"intended_flows[{index}]")), endpoints))
    settings = Settings(endpoints, tuple(flows), fields.strings("exclude_namespaces", ()))
    fields.finish()
    return settings


def _parse_endpoint(name: str, fields: Fields) -> DeclaredEndpoint:
    if name in (EXTERNAL, ANY_STACK):
        raise ConfigError(f"{fields.file}: {fields.where}: `{name}` is a built-in endpoint", fix="choose another endpoint name")
    if fields.has("cidrs"):
        cidrs = tuple(_network(fields, c) for c in fields.strings("cidrs", ()))
        fields.finish()
        return DeclaredEndpoint(name, "cidrs", cidrs=cidrs)
    namespace = fields.string("namespace")
    pods = fields.get("pods", {}) or {}
    if not isinstance(pods, Mapping):
        raise fields.error("pods", "expected a mapping of pod labels", "write `pods: {k8s-app: kube-dns}`")
    fields.finish()
    return DeclaredEndpoint(name, "namespace", namespace=namespace, pods=tuple(sorted((str(k), str(v)) for k, v in pods.items())))


def _network(fields: Fields, text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise fields.error("cidrs", f"{text!r} is not a CIDR", "write CIDRs like 10.96.0.1/32 or 0.0.0.0/0") from exc


def _parse_flow(fields: Fields, endpoints: Mapping[str, DeclaredEndpoint]) -> list[IntendedFlow]:
    sources = [_resolve(name, endpoints) for name in fields.strings("from", ())]
    dests = [_resolve(name, endpoints) for name in fields.strings("to", ())]
    if not sources or not dests:
        raise fields.error("from" if not sources else "to", "missing", "name both ends: a stack, external, any-stack or an endpoint")
    if not fields.has("ports"):
        raise fields.error("ports", "missing", "list the ports, e.g. `ports: [8080, 53/UDP]`, or write `ports: any`")
    ports = _parse_ports(fields, fields.get("ports"))
    fields.get("description")
    fields.finish()
    return [IntendedFlow(s, d, ports) for s in sources for d in dests]


def _resolve(name: str, endpoints: Mapping[str, DeclaredEndpoint]) -> DeclaredEndpoint:
    """Built-in names first, then declared endpoints; any other name is a stack."""
    if name == EXTERNAL:
        return DeclaredEndpoint(EXTERNAL, "external")
    if name == ANY_STACK:
        return DeclaredEndpoint(ANY_STACK, "any-stack")
    return endpoints.get(name) or DeclaredEndpoint(name, "stack")


def _parse_ports(fields: Fields, raw: Any) -> frozenset[tuple[str, int]] | None:
    if raw == "any":
        return None
    if not isinstance(raw, list) or not raw:
        raise fields.error("ports", f"expected a list of ports or `any`, got {raw!r}", "write `ports: [8080, 53/UDP]`")
    return frozenset(_parse_port(fields, item) for item in raw)


def _parse_port(fields: Fields, item: Any) -> tuple[str, int]:
    text = str(item)
    number, _, protocol = text.partition("/")
    protocol = protocol.upper() or "TCP"
    if isinstance(item, bool) or not number.isdigit() or not 1 <= int(number) <= 65535 or protocol not in PROTOCOLS:
        raise fields.error("ports", f"{item!r} is not a port", "write a number (TCP) or number/PROTOCOL, e.g. 53/UDP")
    return protocol, int(number)
