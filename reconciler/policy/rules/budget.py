"""stack-budget: each stack's summed resource requests fit the capacity planned for it.

CPU and memory: the pod's effective request (as the scheduler computes it: app containers plus
sidecars, or the largest init container if bigger; a missing request defaults to the limit) times
its replicas (HPA minReplicas when scaled; DaemonSets count `daemonset_replicas` nodes).
Storage: every PersistentVolumeClaim's requested storage plus each StatefulSet
volumeClaimTemplate times replicas. All arithmetic is exact (Decimal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator, Mapping

from reconciler.objects import ObjectId
from reconciler.policy.fields import Fields
from reconciler.policy.quantity import QuantityError, format_bytes, format_cpu, parse_quantity
from reconciler.policy.rules.base import Family, Finding, RuleSpec
from reconciler.policy.view import EnvironmentView, Subject, Workload

RULE = "stack-budget"
DIMENSIONS = ("cpu", "memory", "storage")


@dataclass(frozen=True)
class Settings:
    budgets: Mapping[str, Mapping[str, Decimal]]
    daemonset_replicas: int
    require_budget: bool


def parse_settings(fields: Fields) -> Settings:
    budgets_fields = fields.mapping("budgets")
    budgets = {str(stack): _parse_budget(budgets_fields.mapping(str(stack))) for stack in list(budgets_fields.raw)}
    budgets_fields.finish()
    settings = Settings(
        budgets=budgets,
        daemonset_replicas=fields.integer("daemonset_replicas", 3, minimum=1),
        require_budget=fields.boolean("require_budget", True),
    )
    fields.finish()
    return settings


def _parse_budget(fields: Fields) -> dict[str, Decimal]:
    budget = {}
    for dimension in DIMENSIONS:
        if not fields.has(dimension):
            raise fields.error(dimension, "missing", f"add `{dimension}:` (a quantity such as 4, 8Gi, 100Gi)")
        try:
            budget[dimension] = parse_quantity(fields.get(dimension))
        except QuantityError as exc:
            raise fields.error(dimension, str(exc), "write a Kubernetes quantity such as 4, 500m, 8Gi") from exc
    fields.finish()
    return budget


@dataclass
class Usage:
    totals: dict[str, Decimal] = field(default_factory=lambda: {d: Decimal(0) for d in DIMENSIONS})
    parts: dict[str, list[tuple[Decimal, str]]] = field(default_factory=lambda: {d: [] for d in DIMENSIONS})

    def add(self, dimension: str, amount: Decimal, what: str) -> None:
        if amount:
            self.totals[dimension] += amount
            self.parts[dimension].append((amount, what))


def usage_by_stack(view: EnvironmentView, daemonset_replicas: int) -> dict[str, Usage]:
    usage = {stack: Usage() for stack in view.stack_names}
    for workload in view.workloads:
        replicas = workload.replicas if workload.replicas is not None else daemonset_replicas
        stack_usage = usage.setdefault(workload.obj.stack, Usage())
        pod = pod_requests(workload)
        for dimension in ("cpu", "memory"):
            stack_usage.add(dimension, pod[dimension] * replicas, f"{workload.obj.id} ({_fmt(dimension, pod[dimension])} x {replicas})")
        for template in (workload.obj.manifest.get("spec") or {}).get("volumeClaimTemplates") or []:
            size = _storage(template)
            name = (template.get("metadata") or {}).get("name", "")
            stack_usage.add("storage", size * replicas, f"{workload.obj.id} volumeClaimTemplate {name} ({format_bytes(size)} x {replicas})")
    for pvc in view.of_kind("PersistentVolumeClaim"):
        size = _storage(pvc.manifest)
        usage.setdefault(pvc.stack, Usage()).add("storage", size, f"{pvc.id} ({format_bytes(size)})")
    return usage


def pod_requests(workload: Workload) -> dict[str, Decimal]:
    """The scheduler's effective pod request: max(app + sidecars, each init container + sidecars before it)."""
    result = {}
    for dimension in ("cpu", "memory"):
        sidecars = Decimal(0)
        init_peak = Decimal(0)
        for container in workload.pod_spec.get("initContainers") or []:
            amount = _request(container, dimension)
            if container.get("restartPolicy") == "Always":
                sidecars += amount
            else:
                init_peak = max(init_peak, amount + sidecars)
        apps = sum((_request(c, dimension) for c in workload.pod_spec.get("containers") or []), Decimal(0))
        result[dimension] = max(apps + sidecars, init_peak)
    return result


def _request(container: Mapping[str, Any], dimension: str) -> Decimal:
    resources = container.get("resources") or {}
    value = (resources.get("requests") or {}).get(dimension) or (resources.get("limits") or {}).get(dimension)
    return _quantity(value)


def _storage(claim: Mapping[str, Any]) -> Decimal:
    return _quantity((((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage"))


def _quantity(value: Any) -> Decimal:
    """Invalid quantities count as zero here; the resources rule reports them."""
    if value is None:
        return Decimal(0)
    try:
        return parse_quantity(value)
    except QuantityError:
        return Decimal(0)


def _fmt(dimension: str, amount: Decimal) -> str:
    return format_cpu(amount) if dimension == "cpu" else format_bytes(amount)


def stack_subject(stack: str) -> Subject:
    return Subject(stack, str(ObjectId("healthflow.io", "Stack", "", stack)), None)


def check(view: EnvironmentView, settings: Settings) -> Iterator[Finding]:
    for stack, usage in usage_by_stack(view, settings.daemonset_replicas).items():
        budget = settings.budgets.get(stack)
        if budget is None:
            if settings.require_budget:
                yield Finding(RULE, stack_subject(stack), f"stack {stack} has no budget declared",
                              f"add budgets.{stack} (cpu, memory, storage) to policies/budget.yaml")
            continue
        for dimension in DIMENSIONS:
            used, limit = usage.totals[dimension], budget[dimension]
            if used > limit:
                top = sorted(usage.parts[dimension], key=lambda part: -part[0])[:3]
                yield Finding(
                    RULE, stack_subject(stack),
                    f"stack {stack} requests {_fmt(dimension, used)} {dimension}, over its budget of {_fmt(dimension, limit)}; "
                    f"largest: {'; '.join(what for _, what in top)}",
                    f"lower the {dimension} requests or replicas of stack {stack}, or raise budgets.{stack}.{dimension} after capacity planning",
                )


FAMILY = Family(
    name="budget",
    rules=(RuleSpec(RULE, "Each stack's requests (CPU, memory, storage) x replicas fit its declared budget.", "high"),),
    parse_settings=parse_settings,
    check=check,
)
