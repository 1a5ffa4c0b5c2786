"""Applying a planned stack.

Server-side apply with one field manager, in kind order (CRDs and Namespaces first, CRDs waited on
until Established and served); objects of the same kind rank go in parallel. Nothing is applied if
any object failed its dry-run, so a bad object never leaves a half-applied stack; a stack's one change
may be confirmed by its apply instead (`plan.write_single`), after every other check. `should_stop` is
checked between objects, never inside one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import groupby
from typing import Callable

from reconciler.kube.cluster import FIELD_MANAGER, ApiError, Cluster, UnknownKind
from reconciler.kube.takeover import takeover_patch
from reconciler.objects import K8sObject, apply_rank
from reconciler.parallel import map_threads
from reconciler.pipeline.plan import DRY_RUN_PARALLEL, PlannedObject, confirm, crd_kinds
from reconciler.results import Action

_PARALLEL = 16
"""Applies in flight at once within one kind rank of a stack (ranks go in order: CRDs and Namespaces first)."""
CRD_ESTABLISHED_TIMEOUT_S = 60.0


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
    errors = _blocking_errors(planned, recreate_immutable, take_ownership)
    if not errors and not should_stop():
        errors = _confirm_by_applying(cluster, planned, recreate_immutable, take_ownership)
    staged: list[str] = []
    if not errors and not should_stop() and any(p.awaits_namespace for p in planned):
        staged, errors = _stage_namespaces(cluster, planned, recreate_immutable, take_ownership, should_stop)
    outcome = ApplyOutcome(conflicts=[f"{p.obj.id}: {p.conflict}" for p in planned if p.conflict])
    outcome.applied = sum(1 for p in planned if p.written and p.action in (Action.CREATE, Action.UPDATE))
    if errors:
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        but = f" but Namespace {', '.join(staged)}" if staged else ""
        outcome.error = f"nothing applied{but}: " + "; ".join(errors[:3]) + more
        return outcome
    if outcome.applied:
        on_applied(outcome.applied)
    todo = [p for p in planned if (p.action in (Action.CREATE, Action.UPDATE) or p.reapply) and not p.written]
    for rank, group in groupby(todo, key=lambda p: apply_rank(p.obj.kind)):
        if should_stop():
            outcome.error = "stopped before finishing the stack (no object was left half-applied)"
            return outcome
        members = list(group)
        failures = [f for f in map_threads(lambda p: _apply_one(cluster, p, recreate_immutable, take_ownership,
                                                                should_stop), members, _PARALLEL, "apply") if f]
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


def _confirm_by_applying(cluster: Cluster, planned: list[PlannedObject], recreate_immutable: bool,
                         take_ownership: bool) -> list[str]:
    """The stack's one change the plan left unconfirmed (`plan.write_single`) is applied now and judged as
    its dry run would have been; returns the blocking errors then (a rejected apply wrote nothing)."""
    for entry in planned:
        if entry.confirm_at_apply and not entry.written:
            confirm(cluster, entry, entry.live, take_ownership, crd_kinds([p.obj for p in planned]), write=True)
            entry.live = None
    return _blocking_errors(planned, recreate_immutable, take_ownership)


def _stage_namespaces(cluster: Cluster, planned: list[PlannedObject], recreate_immutable: bool,
                      take_ownership: bool, should_stop: Callable[[], bool]) -> tuple[list[str], list[str]]:
    """Apply the new Namespaces that objects of this stack live in, then dry-run those objects: before
    the Namespace exists the server can only answer that it is not found (Flux's kustomize-controller
    applies Namespaces in a stage of their own for the same reason). Returns the Namespaces applied and
    the blocking errors then; with errors, nothing else of the stack is applied and the Namespace stays,
    empty, for the fixed commit."""
    waiting = [p for p in planned if p.awaits_namespace]
    names = {p.obj.id.namespace for p in waiting}
    namespaces = [p for p in planned if p.obj.kind == "Namespace" and p.action is Action.CREATE
                  and p.obj.id.name in names and not p.written]
    staged: list[str] = []
    for entry in namespaces:
        failure = _apply_one(cluster, entry, recreate_immutable, take_ownership, should_stop)
        if failure:
            return staged, [failure]
        entry.written = True
        staged.append(entry.obj.id.name)
    crds = crd_kinds([p.obj for p in planned])
    map_threads(lambda entry: confirm(cluster, entry, None, take_ownership, crds), waiting, DRY_RUN_PARALLEL, "dry-run")
    return staged, _blocking_errors(planned, recreate_immutable, take_ownership)


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
    entry.sent = True
    try:
        if entry.immutable and recreate:
            _recreate(cluster, entry.obj)
        else:
            if entry.takeover:
                _take_over_client_side_fields(cluster, entry.obj)
            cluster.apply(entry.obj.manifest, force=force, body=entry.obj.encoded(), answer=False)
        return ""
    except ApiError as exc:
        if exc.status == 409:
            return f"{entry.obj.id}: conflict with another field manager: {'; '.join(exc.causes) or exc.message}"
        return f"{entry.obj.id}: {exc.message}"


def _take_over_client_side_fields(cluster: Cluster, obj: K8sObject) -> None:
    """Move what client-side `kubectl apply` owns into our field manager (kube.takeover), read fresh: the
    patch is guarded by the resourceVersion, and a writer in between makes it fail, never overwrite."""
    oid = obj.id
    live = cluster.get(obj.api_version, oid.kind, oid.namespace, oid.name)
    patch = takeover_patch(live, FIELD_MANAGER) if live is not None else None
    if patch is not None:
        cluster.json_patch(obj.api_version, oid.kind, oid.namespace, oid.name, patch)


def _recreate(cluster: Cluster, obj: K8sObject) -> None:
    """Delete and re-create an object whose immutable field changed (only when the stack opts in)."""
    oid = obj.id
    cluster.delete(obj.api_version, oid.kind, oid.namespace, oid.name)
    deadline = time.monotonic() + 60
    while cluster.get(obj.api_version, oid.kind, oid.namespace, oid.name) is not None:
        if time.monotonic() > deadline:
            raise ApiError(f"{oid}: old object still terminating after 60s", status=504)
        time.sleep(0.2)
    cluster.apply(obj.manifest, force=True, body=obj.encoded(), answer=False)
