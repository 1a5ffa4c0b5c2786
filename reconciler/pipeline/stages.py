"""The stages of one stack's pass that decide or record, as plain functions: the gate before planning
and the inventory record after it. Planning, applying and pruning live in plan.py, apply.py, prune.py."""

from __future__ import annotations

from typing import Callable

from reconciler import graph
from reconciler.config import EnvironmentConfig, StackConfig
from reconciler.kube.livecache import LiveCache, WatchKey
from reconciler.objects import K8sObject, ObjectId
from reconciler.pipeline.diff import object_hash
from reconciler.pipeline.history import add_entry
from reconciler.pipeline.inventory import Inventory, StackRecord, now_iso
from reconciler.pipeline.ownership import handed_off
from reconciler.pipeline.rendered import RenderedEnv
from reconciler.results import StackResult, StackState


def gate(stack: StackConfig, result: StackResult, *, deps: dict[str, list[str]], failed: set[str],
         rendered: RenderedEnv, policy_blocked: bool, unhealthy: Callable[[], list[tuple[str, str]]],
         dry_run: bool) -> bool:
    """Whether the stack may be planned; if not, `result` says why (blocked or failed)."""
    blockers = graph.blockers(deps, stack.name, failed) if not dry_run else []
    if blockers:
        result.state, result.blocked_by = StackState.BLOCKED, blockers
        result.reason = "blocked by " + ", ".join(blockers)
        return False
    if stack.name in rendered.errors:
        result.state, result.reason = StackState.FAILED, rendered.errors[stack.name]
        return False
    problems = unhealthy() if not dry_run else []
    if problems:
        result.state, result.blocked_by = StackState.BLOCKED, [name for name, _ in problems]
        result.reason = "dependencies not healthy: " + "; ".join(f"{n} ({why})" for n, why in problems)
        return False
    if policy_blocked:
        enforced = [v for v in result.violations if v.mode == "enforce" and not v.excepted_by]
        result.state, result.blocked_by = StackState.BLOCKED, ["policy"]
        result.reason = f"{len(enforced)} enforced policy violation(s): " + "; ".join(
            f"{v.rule} on {v.object}{f' ({v.file})' if v.file else ''}: {v.message}" for v in enforced[:3])
        return False
    return True


def refuse_empty_render(stack: StackConfig, objects: list[K8sObject], record: StackRecord,
                        result: StackResult) -> bool:
    """An empty render of a stack that owns objects is a mistake, never a reason to prune everything."""
    if objects or not record.objects:
        return False
    result.state = StackState.FAILED
    result.reason = (f"stack {stack.name!r} rendered no objects but owns {len(record.objects)}: refusing "
                     "to prune everything (fix the overlay, or delete the stack from the environment)")
    return True


def settled(live: LiveCache | None, last_clean: tuple[str | None, int] | None, objects: list[K8sObject],
            record: StackRecord, digest: str | None, owner: str) -> bool:
    """Nothing to do for this stack: its render (`digest`) is the one its last clean pass applied, no watch
    event touched its objects (`owner`'s) since that pass planned, it was healthy and owned exactly these
    objects. Only with the daemon's live cache, whose synced watches vouch for the cluster side."""
    if live is None or last_clean is None:
        return False
    keys = {WatchKey(o.api_version, o.kind, o.id.namespace) for o in objects}
    return (live.covers(keys) and last_clean == (digest, live.changes(owner))
            and record.state in ("applied", "unchanged") and record.healthy is not False
            and set(record.objects) == {str(o.id) for o in objects})


def record_stack(inventory: Inventory, env: EnvironmentConfig, rendered: RenderedEnv, stack: str,
                 result: StackResult, objects: list[K8sObject], owners: dict[ObjectId, str], hash_key: bytes,
                 never_created: set[str] = frozenset()) -> None:
    """Write the stack's record (commit, `objects` as applied with the hash of each, result, health);
    a steady-state pass writes nothing, and a record that owns nothing new may wait (`inventory`).
    `owners`: which stack renders each object of the environment; `never_created`: objects of a failed
    stack that did not exist and were never sent (`plan.never_created`)."""
    record = inventory.record(stack)
    before, owned_before = dict(record.__dict__, last_run=None), set(record.objects)
    now = now_iso()
    record.last_run, record.state, record.reason = now, result.state.value, result.reason
    record.violations = len(result.violations)
    record.drift_count = result.drifted if not env.sync.correct_drift else 0
    if result.state in (StackState.APPLIED, StackState.UNCHANGED):
        previous = record.objects
        record.commit = rendered.commit_of(stack).sha
        record.healthy = result.healthy
        record.objects = {str(o.id): object_hash(o, hash_key) for o in objects}
        record.objects.update(handed_off(stack, previous, owners, lambda name: inventory.record(name).objects))
        if rendered.errors and env.sync.prune:  # prune postponed: keep owning what was not pruned
            for key, digest in previous.items():
                record.objects.setdefault(key, digest)
        if result.state is StackState.APPLIED:
            record.applied_at = now
    elif result.state is StackState.FAILED:
        record.healthy = result.healthy
        for obj in rendered.objects.get(stack, []):  # some may be applied: never lose ownership; the hash is
            if str(obj.id) not in never_created:     # what was sent
                record.objects.setdefault(str(obj.id), object_hash(obj, hash_key))
    record.history = add_entry(record.history, rendered.commit_of(stack), result, env.rollback.history,
                               pinned=stack in rendered.pinned)
    if dict(record.__dict__, last_run=None) == before:
        return
    inventory.save_record(stack, record, wait=set(record.objects) <= owned_before)  # it owns nothing new
