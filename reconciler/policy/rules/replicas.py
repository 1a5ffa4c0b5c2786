"""min-replicas: a service survives the loss of a node only if it runs enough copies.

Counted as the workload will run right after apply: HPA minReplicas when an HPA scales it,
otherwise `spec.replicas` (1 when absent). DaemonSets (one pod per node) and Jobs are not services
with a replica count and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from reconciler.policy.fields import Fields
from reconciler.policy.rules.base import Family, Finding, RuleSpec
from reconciler.policy.view import EnvironmentView, Subject

RULE = "min-replicas"


@dataclass(frozen=True)
class Settings:
    min_replicas: int


def parse_settings(fields: Fields) -> Settings:
    settings = Settings(min_replicas=fields.integer("min_replicas", 3, minimum=1))
    fields.finish()
    return settings


def check(view: EnvironmentView, settings: Settings) -> Iterator[Finding]:
    for workload in view.workloads:
        if not workload.scalable:
            continue
        replicas = workload.replicas or 0
        if replicas >= settings.min_replicas:
            continue
        if workload.hpa is not None:
            source = f"HPA {workload.hpa.id.name} minReplicas is {replicas}"
            fix = f"set spec.minReplicas: {settings.min_replicas} on HorizontalPodAutoscaler {workload.hpa.id.name}"
        else:
            source = f"spec.replicas is {replicas}" + ("" if workload.replicas_in_git is not None else " (unset, defaults to 1)")
            fix = f"set spec.replicas: {settings.min_replicas} (or scale it with an HPA whose minReplicas is {settings.min_replicas})"
        yield Finding(
            RULE,
            Subject.of(workload.obj),
            f"{workload.kind} {workload.name} runs {replicas} replica(s), at least {settings.min_replicas} required: {source}",
            fix,
        )


FAMILY = Family(
    name="replicas",
    rules=(RuleSpec(RULE, "Every Deployment/StatefulSet/ReplicaSet runs at least N replicas (HPA minReplicas when scaled).", "high"),),
    parse_settings=parse_settings,
    check=check,
)
