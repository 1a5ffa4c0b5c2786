"""Applying a planned stack and pruning what it no longer wants.

Server-side apply with one field manager, in kind order (CRDs and Namespaces first); objects of
the same kind rank go in parallel. Nothing is applied if any object failed its dry-run, so a bad
object never leaves a half-applied stack. `should_stop` is checked between objects, never inside
one. Prune deletes only what the inventory lists *and* the live object's owner label confirms.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from typing import Callable

from reconciler.kube.cluster import ApiError, Cluster, UnknownKind
from reconciler.pipeline.inventory import OWNER_LABEL
from reconciler.objects import K8sObject, ObjectId, apply_rank
from reconciler.pipeline.plan import PlannedObject
from reconciler.results import Action

_PARALLEL = 4
CRD_ESTABLISHED_TIMEOUT_S = 60.0
_NEVER_PRUNED_WITHOUT_OPT_IN = {"Namespace", "CustomResourceDefinition"}
PRUNE_ANNOTATION = "reconciler.healthflow.io/prune"
"""`disabled` on an object keeps it in the cluster when Git drops it (Flux: kustomize.toolkit.fluxcd.io/prune)."""


@dataclass
class ApplyOutcome:
    applied: int = 0
    conflicts: list[str] = field(default_factory=list)
    error: str = ""


def _blocking_errors(planned: list[PlannedObject], recreate_immutable: bool, take_ownership: bool) -> list[str]:
    errors = [f"{p.where}: {p.error}" for p in planned
              if p.error and not (p.immutable and recreate_immutable)]
    if not take_ownership:
        errors += [f"{p.where}: conflict with another field manager ({p.conflict}); enable sync.correctDrift "
                   "to take ownership" for p in planned if p.conflict and (p.action is not Action.UNCHANGED or p.reapply)]
    return errors


def apply_planned(
    cluster: Cluster,
    planned: list[PlannedObject],
    *,
    recreate_immutable: bool,
    take_ownership: bool,
    should_stop: Callable[[], bool],
    on_applied: Callable[[int], None] = lambda n: None,
) -> ApplyOutcome:
    outcome = ApplyOutcome(conflicts=[f"{p.obj.id}: {p.conflict}" for p in planned if p.conflict])
    errors = _blocking_errors(planned, recreate_immutable, take_ownership)
    if errors:
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        outcome.error = "nothing applied: " + "; ".join(errors[:3]) + more
        return outcome
    todo = [p for p in planned if p.action in (Action.CREATE, Action.UPDATE) or p.reapply]
    with ThreadPoolExecutor(max_workers=_PARALLEL, thread_name_prefix="apply") as pool:
        for rank, group in groupby(todo, key=lambda p: apply_rank(p.obj.kind)):
            if should_stop():
                outcome.error = "stopped before finishing the stack (no object was left half-applied)"
                return outcome
            members = list(group)
            failures = [f for f in pool.map(lambda p: _apply_one(cluster, p, recreate_immutable, take_ownership,
                                                                   should_stop), members) if f]
            outcome.applied += len(members) - len(failures)
            on_applied(outcome.applied)
            if failures:
                outcome.error = "; ".join(failures[:3])
                return outcome
            crds = [p.obj for p in members if p.obj.kind == "CustomResourceDefinition"]
            if crds:
                problem = wait_established(cluster, crds, should_stop)
                if problem:
                    outcome.error = problem
                    return outcome
    return outcome


def _discoverable(cluster: Cluster, crd: K8sObject) -> bool:
    """Established is not yet served: API discovery lists the new kind a moment later."""
    spec = crd.manifest.get("spec") or {}
    kind = (spec.get("names") or {}).get("kind", "")
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        api_version = f"{spec.get('group')}/{version.get('name')}"
        cluster.forget(api_version)
        try:
            cluster.resource(api_version, kind)
        except UnknownKind:
            return False
    return True


def wait_established(cluster: Cluster, crds: list[K8sObject], should_stop: Callable[[], bool],
                     timeout_s: float = CRD_ESTABLISHED_TIMEOUT_S) -> str:
    """Wait until every CRD is Established, then drop cached discovery so its kinds are found: the
    custom resources of the same stack apply right after. '' when ready, else why not."""
    deadline = time.monotonic() + timeout_s
    pending = {crd.id.name: crd for crd in crds}
    delay = 0.05
    while pending:
        for name in list(pending):
            live = cluster.get(pending[name].api_version, "CustomResourceDefinition", "", name) or {}
            conditions = (live.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions) \
                    and _discoverable(cluster, pending[name]):
                del pending[name]
        if not pending:
            break
        if should_stop() or time.monotonic() > deadline:
            return f"CustomResourceDefinition {', '.join(sorted(pending))} not Established after {timeout_s:.0f}s"
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    return ""


def _apply_one(cluster: Cluster, entry: PlannedObject, recreate: bool, force: bool,
               should_stop: Callable[[], bool]) -> str:
    """Apply one object; '' on success, else why it failed."""
    if should_stop():
        return f"{entry.obj.id}: not applied (stopping)"
    try:
        if entry.immutable and recreate:
            _recreate(cluster, entry.obj)
        else:
            cluster.apply(entry.obj.manifest, force=force)
        return ""
    except ApiError as exc:
        if exc.status == 409:
            return f"{entry.obj.id}: conflict with another field manager: {'; '.join(exc.causes) or exc.message}"
        return f"{entry.obj.id}: {exc.message}"


def _recreate(cluster: Cluster, obj: K8sObject) -> None:
    """Delete and re-create an object whose immutable field changed (only when the stack opts in)."""
    oid = obj.id
    cluster.delete(obj.api_version, oid.kind, oid.namespace, oid.name)
    deadline = time.monotonic() + 60
    while cluster.get(obj.api_version, oid.kind, oid.namespace, oid.name) is not None:
        if time.monotonic() > deadline:
            raise ApiError(f"{oid}: old object still terminating after 60s", status=504)
        time.sleep(0.2)
    cluster.apply(obj.manifest, force=True)


def prune_objects(cluster: Cluster, ids: list[ObjectId], selector: str, *,
                  allow_namespaces: bool) -> tuple[int, list[str]]:
    """Delete inventory objects no longer in Git, in reverse apply order; (deleted, skipped reasons)."""
    owner = selector.split("=", 1)[1]
    deleted, skipped = 0, []
    for oid in sorted(ids, key=lambda i: (apply_rank(i.kind), i), reverse=True):
        if oid.kind in _NEVER_PRUNED_WITHOUT_OPT_IN and not allow_namespaces:
            skipped.append(f"{oid} (set pruneNamespaces: true on the stack to prune {oid.kind}s)")
            continue
        api_version = preferred_version(cluster, oid)
        live = cluster.get(api_version, oid.kind, oid.namespace, oid.name)
        if live is None:
            continue
        labels = (live.get("metadata") or {}).get("labels") or {}
        if labels.get(OWNER_LABEL) != owner:
            skipped.append(f"{oid} (not labelled as ours)")
            continue
        if ((live.get("metadata") or {}).get("annotations") or {}).get(PRUNE_ANNOTATION) == "disabled":
            skipped.append(f"{oid} (annotated {PRUNE_ANNOTATION}: disabled, left in place)")
            continue
        cluster.delete(api_version, oid.kind, oid.namespace, oid.name)
        deleted += 1
    return deleted, skipped


_PREFERRED = {"": "v1", "apps": "apps/v1", "batch": "batch/v1", "networking.k8s.io": "networking.k8s.io/v1",
              "policy": "policy/v1", "autoscaling": "autoscaling/v2", "rbac.authorization.k8s.io":
              "rbac.authorization.k8s.io/v1", "storage.k8s.io": "storage.k8s.io/v1",
              "apiextensions.k8s.io": "apiextensions.k8s.io/v1", "coordination.k8s.io": "coordination.k8s.io/v1",
              "scheduling.k8s.io": "scheduling.k8s.io/v1", "discovery.k8s.io": "discovery.k8s.io/v1"}


def preferred_version(cluster: Cluster, oid: ObjectId) -> str:
    """The inventory stores group/kind, not the version; use the group's preferred version."""
    if oid.group in _PREFERRED:
        return _PREFERRED[oid.group]
    return cluster.preferred_version(oid.group)
