"""anti-affinity: replicas of one workload must land on different nodes, or a node loss takes several.

Accepted forms (configurable): a required pod anti-affinity term on the topology key whose label
selector selects the workload's own pod labels (in its own namespace), or a topology spread
constraint on that key with `whenUnsatisfiable: DoNotSchedule` and `maxSkew` at most the configured
bound, whose selector selects the pod's own labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from reconciler.policy import selectors
from reconciler.policy.fields import Fields
from reconciler.policy.rules.base import Family, Finding, RuleSpec
from reconciler.policy.view import EnvironmentView, Subject, Workload

RULE = "anti-affinity"
FORMS = ("pod-anti-affinity", "topology-spread")


@dataclass(frozen=True)
class Settings:
    accept: tuple[str, ...]
    topology_key: str
    max_skew: int
    min_replicas: int


def parse_settings(fields: Fields) -> Settings:
    settings = Settings(
        accept=fields.strings("accept", FORMS, choices=FORMS),
        topology_key=fields.string("topology_key", "kubernetes.io/hostname"),
        max_skew=fields.integer("max_skew", 1, minimum=1),
        min_replicas=fields.integer("applies_from_replicas", 2, minimum=1),
    )
    fields.finish()
    return settings


def check(view: EnvironmentView, settings: Settings) -> Iterator[Finding]:
    for workload in view.workloads:
        replicas = workload.replicas
        if not workload.scalable or replicas is None or replicas < settings.min_replicas:
            continue
        if _spread(workload, settings):
            continue
        forms = " or ".join(_form_text(form, settings) for form in settings.accept)
        yield Finding(
            RULE,
            Subject.of(workload.obj),
            f"{workload.kind} {workload.name} runs {replicas} replicas without {forms} selecting its own pod labels",
            f"add spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution "
            f"with topologyKey: {settings.topology_key} and a labelSelector matching the pod labels"
            if "pod-anti-affinity" in settings.accept
            else f"add a topologySpreadConstraint on {settings.topology_key} with whenUnsatisfiable: DoNotSchedule",
        )


def _form_text(form: str, settings: Settings) -> str:
    if form == "pod-anti-affinity":
        return f"required pod anti-affinity on {settings.topology_key}"
    return f"a DoNotSchedule topology spread (maxSkew <= {settings.max_skew}) on {settings.topology_key}"


def _spread(workload: Workload, settings: Settings) -> bool:
    spec = workload.pod_spec
    if "pod-anti-affinity" in settings.accept and any(
        _anti_affinity_term_ok(term, workload, settings)
        for term in (((spec.get("affinity") or {}).get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or [])
    ):
        return True
    return "topology-spread" in settings.accept and any(
        _spread_constraint_ok(c, workload, settings) for c in spec.get("topologySpreadConstraints") or []
    )


def _anti_affinity_term_ok(term: Mapping[str, Any], workload: Workload, settings: Settings) -> bool:
    if term.get("topologyKey") != settings.topology_key:
        return False
    namespaces = term.get("namespaces") or []
    if namespaces and workload.namespace not in namespaces and term.get("namespaceSelector") is None:
        return False
    selector = term.get("labelSelector")
    return selector is not None and selectors.matches(selector, workload.pod_labels)


def _spread_constraint_ok(constraint: Mapping[str, Any], workload: Workload, settings: Settings) -> bool:
    selector = constraint.get("labelSelector")
    return (
        constraint.get("topologyKey") == settings.topology_key
        and constraint.get("whenUnsatisfiable") == "DoNotSchedule"
        and isinstance(constraint.get("maxSkew"), int)
        and constraint["maxSkew"] <= settings.max_skew
        and selector is not None
        and selectors.matches(selector, workload.pod_labels)
    )


FAMILY = Family(
    name="anti-affinity",
    rules=(RuleSpec(RULE, "Multi-replica workloads spread their pods across nodes (required anti-affinity or DoNotSchedule spread).", "high"),),
    parse_settings=parse_settings,
    check=check,
)
