"""pdb: a node drain evicts pods only as far as a PodDisruptionBudget allows; without one, a drain
can take every replica at once, and a PDB allowing zero disruptions blocks drains forever.

Every Deployment/StatefulSet/ReplicaSet with at least `applies_from_replicas` replicas (HPA
minReplicas when scaled) must be selected by exactly one PDB in its namespace (the eviction API
refuses pods matched by several) that allows at least one disruption at that replica count,
computed as the disruption controller does (percentages rounded up). A smaller workload needs no
PDB, but a PDB that does select it must obey the same two conditions, or it blocks node drains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

from reconciler.objects import K8sObject
from reconciler.policy import selectors
from reconciler.policy.fields import Fields
from reconciler.policy.rules.base import Family, Finding, RuleSpec
from reconciler.policy.view import EnvironmentView, Subject, Workload

RULE = "pdb"


@dataclass(frozen=True)
class Settings:
    min_replicas: int


def parse_settings(fields: Fields) -> Settings:
    settings = Settings(min_replicas=fields.integer("applies_from_replicas", 2, minimum=1))
    fields.finish()
    return settings


def check(view: EnvironmentView, settings: Settings) -> Iterator[Finding]:
    pdbs = view.of_kind("PodDisruptionBudget")
    for workload in view.workloads:
        replicas = workload.replicas
        if not workload.scalable or replicas is None:
            continue
        covering = [p for p in pdbs if p.id.namespace == workload.namespace and _selects(p, workload)]
        if replicas < settings.min_replicas and not covering:
            continue  # a single replica needs no PDB, but one it has must still let a drain through
        finding = _judge(workload, replicas, covering)
        if finding:
            yield Finding(RULE, Subject.of(workload.obj), *finding)


def _selects(pdb: K8sObject, workload: Workload) -> bool:
    selector = (pdb.manifest.get("spec") or {}).get("selector")
    return selector is not None and selectors.matches(selector, workload.pod_labels)


def _judge(workload: Workload, replicas: int, covering: list[K8sObject]) -> tuple[str, str] | None:
    what = f"{workload.kind} {workload.name} ({replicas} replicas)"
    if not covering:
        return (f"{what} is not covered by any PodDisruptionBudget",
                "add a PodDisruptionBudget whose selector matches the pod labels, e.g. maxUnavailable: 1")
    if len(covering) > 1:
        names = ", ".join(sorted(p.id.name for p in covering))
        return (f"{what} is covered by {len(covering)} PodDisruptionBudgets ({names}); the eviction API refuses to evict its pods",
                "keep exactly one PodDisruptionBudget selecting these pods")
    pdb = covering[0]
    allowed = allowed_disruptions(pdb.manifest.get("spec") or {}, replicas)
    if allowed is None:
        return (f"PodDisruptionBudget {pdb.id.name} covering {what} sets neither minAvailable nor maxUnavailable",
                "set maxUnavailable: 1")
    if allowed < 1:
        return (f"PodDisruptionBudget {pdb.id.name} allows {allowed} disruptions for {what}, so no node can be drained",
                f"lower minAvailable below {replicas} or set maxUnavailable: 1")
    return None


def allowed_disruptions(spec: dict[str, Any], replicas: int) -> int | None:
    """Disruptions allowed with all `replicas` healthy; None when the PDB sets no bound."""
    if spec.get("maxUnavailable") is not None:
        return _scaled(spec["maxUnavailable"], replicas)
    if spec.get("minAvailable") is not None:
        return replicas - _scaled(spec["minAvailable"], replicas)
    return None


def _scaled(value: Any, replicas: int) -> int:
    text = str(value)
    if text.endswith("%"):
        return math.ceil(int(text[:-1]) * replicas / 100)
    return int(text)


FAMILY = Family(
    name="pdb",
    rules=(RuleSpec(RULE, "Multi-replica workloads are covered by exactly one PDB allowing at least one disruption.", "high"),),
    parse_settings=parse_settings,
    check=check,
)
