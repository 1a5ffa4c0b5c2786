"""hpa-target and hpa-replicas-in-git: an HPA aimed at nothing scales nothing, two HPAs on one
workload fight each other, and a `spec.replicas` in Git is re-applied on every sync, resetting
whatever the HPA decided.
"""

from __future__ import annotations

from typing import Iterator

from reconciler.policy.rules.base import Family, Finding, RuleSpec, no_settings
from reconciler.policy.view import SCALABLE_KINDS, EnvironmentView, Subject

TARGET = "hpa-target"
REPLICAS_IN_GIT = "hpa-replicas-in-git"


def check(view: EnvironmentView, _settings: None) -> Iterator[Finding]:
    yield from _targets(view)
    yield from _replicas_in_git(view)


def _targets(view: EnvironmentView) -> Iterator[Finding]:
    for hpa in view.of_kind("HorizontalPodAutoscaler"):
        spec = hpa.manifest.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        target = f"{ref.get('kind')} {ref.get('name')}"
        workload = view.hpa_target(hpa)
        subject = Subject.of(hpa)
        if workload is None:
            yield Finding(TARGET, subject,
                          f"HorizontalPodAutoscaler {hpa.id.name} targets {target}, which the environment does not render in namespace {hpa.id.namespace}",
                          "point spec.scaleTargetRef at a Deployment or StatefulSet of the same namespace, or remove the HPA")
            continue
        if workload.kind not in SCALABLE_KINDS:
            yield Finding(TARGET, subject, f"HorizontalPodAutoscaler {hpa.id.name} targets {target}, which cannot be scaled",
                          "target a Deployment, StatefulSet or ReplicaSet")
        if len(workload.hpas) > 1:
            others = ", ".join(sorted(h.id.name for h in workload.hpas))
            yield Finding(TARGET, subject, f"{target} is scaled by {len(workload.hpas)} HorizontalPodAutoscalers ({others}); they fight",
                          "keep one HorizontalPodAutoscaler per workload")
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            yield Finding(TARGET, subject, f"HorizontalPodAutoscaler {hpa.id.name} has minReplicas {low} > maxReplicas {high}",
                          "make maxReplicas at least minReplicas")


def _replicas_in_git(view: EnvironmentView) -> Iterator[Finding]:
    for workload in view.workloads:
        if workload.hpa is not None and workload.replicas_in_git is not None:
            yield Finding(
                REPLICAS_IN_GIT, Subject.of(workload.obj),
                f"{workload.kind} {workload.name} sets spec.replicas: {workload.replicas_in_git} but is scaled by "
                f"HorizontalPodAutoscaler {workload.hpa.id.name}; every sync would reset the HPA's choice",
                "remove spec.replicas from the manifest (and its patches); the HPA's minReplicas sets the floor",
            )


FAMILY = Family(
    name="hpa",
    rules=(
        RuleSpec(TARGET, "Every HPA targets a scalable workload of the environment, one HPA per workload, minReplicas <= maxReplicas.", "high"),
        RuleSpec(REPLICAS_IN_GIT, "A workload scaled by an HPA does not set spec.replicas in Git.", "medium"),
    ),
    parse_settings=no_settings,
    check=check,
)
