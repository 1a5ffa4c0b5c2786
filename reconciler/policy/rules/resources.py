"""resources: requests let the scheduler place pods and the budgets add up; limits stop one
container from starving its neighbours. Every container (init containers included, since they
are scheduled too) must set the configured requests and limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from reconciler.policy.fields import Fields
from reconciler.policy.quantity import QuantityError, parse_quantity
from reconciler.policy.rules.base import Family, Finding, RuleSpec
from reconciler.policy.view import EnvironmentView, Subject

RULE = "resources"
RESOURCES = ("cpu", "memory", "ephemeral-storage")


@dataclass(frozen=True)
class Settings:
    requests: tuple[str, ...]
    limits: tuple[str, ...]


def parse_settings(fields: Fields) -> Settings:
    settings = Settings(
        requests=fields.strings("requests", ("cpu", "memory"), choices=RESOURCES),
        limits=fields.strings("limits", ("cpu", "memory"), choices=RESOURCES),
    )
    fields.finish()
    return settings


def check(view: EnvironmentView, settings: Settings) -> Iterator[Finding]:
    for workload in view.workloads:
        for container in workload.containers():
            resources = container.spec.get("resources") or {}
            missing = [f"requests.{r}" for r in settings.requests if not (resources.get("requests") or {}).get(r)]
            missing += [f"limits.{r}" for r in settings.limits if not (resources.get("limits") or {}).get(r)]
            where = f"container {container.name} of {workload.kind} {workload.name}"
            if missing:
                yield Finding(
                    RULE, Subject.of(workload.obj), f"{where} does not set {', '.join(missing)}",
                    f"set resources.{', resources.'.join(missing)} on container {container.name}",
                )
            for problem in _invalid(resources):
                yield Finding(RULE, Subject.of(workload.obj), f"{where}: {problem}", "write quantities like 250m, 512Mi, 1Gi")


def _invalid(resources: dict) -> Iterator[str]:
    for section in ("requests", "limits"):
        for name, value in (resources.get(section) or {}).items():
            try:
                parse_quantity(value)
            except QuantityError as exc:
                yield f"resources.{section}.{name}: {exc}"


FAMILY = Family(
    name="resources",
    rules=(RuleSpec(RULE, "Every container sets CPU and memory requests and limits.", "medium"),),
    parse_settings=parse_settings,
    check=check,
)
