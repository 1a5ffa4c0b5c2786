"""One pass walking the waves of the stack graph: per stack gate -> plan -> apply -> health -> prune -> record.

Independent stacks of a wave run in parallel; a failed or blocked stack blocks its dependents and
nothing else. Every failure ends up in the stack's result, never as an exception out of the pass.
"""

from __future__ import annotations

import functools
import time
from typing import Callable

import structlog

from reconciler import graph
from reconciler.config import EnvironmentConfig, StackConfig
from reconciler.errors import ReconcilerError
from reconciler.kube.health import unready, wait_healthy
from reconciler.kube.health_rules import HealthRules
from reconciler.objects import K8sObject, sort_for_apply
from reconciler.parallel import map_threads
from reconciler.pipeline.apply import apply_planned
from reconciler.pipeline.context import PassContext, Settled
from reconciler.pipeline.inventory import Inventory, StackRecord
from reconciler.pipeline.locate import object_files
from reconciler.pipeline.ownership import owner_label_value, prune_candidates
from reconciler.pipeline.plan import PlannedObject, never_created, plan_stack, unchecked_note
from reconciler.pipeline.progress import Emit
from reconciler.pipeline.prune import gone_note, prune_objects, without_unserved
from reconciler.pipeline.holdback import HoldBack
from reconciler.pipeline.prune_guard import guard_mass_prune
from reconciler.pipeline.rendered import RenderedEnv
from reconciler.pipeline.stages import gate, record_stack, refuse_empty_render, settled
from reconciler.results import Action, PassResult, StackResult, StackState

log = structlog.get_logger("reconciler.pipeline")


class PassRun:
    """The state of one pass while it walks the waves: its context in, its results (and the stacks it
    found settled) out; the stack threads of a wave write only to this pass's own state."""

    def __init__(self, ctx: PassContext, rendered: RenderedEnv, inventory: Inventory, result: PassResult,
                 selected: set[str], dry_run: bool, emit: Emit, should_stop: Callable[[], bool]):
        self.ctx, self.env = ctx, ctx.env
        self.settled: dict[str, Settled] = {}  # stacks found settled by this pass, for the Engine to remember
        self.rendered, self.inventory, self.result = rendered, inventory, result
        self.selected, self.dry_run, self.emit, self.should_stop = selected, dry_run, emit, should_stop
        self.failed: set[str] = set()
        self.deps = ctx.env.dependencies
        self.health_rules = HealthRules.from_config(ctx.env.health_check_exprs)
        self.owners = rendered.owners()
        self._applying: dict[str, list[K8sObject]] = {}  # stack -> its objects as applied (owned), once computed
        self._planned: dict[str, list[PlannedObject]] = {}  # stack -> its plan, once made
        report = rendered.policy_report
        self.policy_blocked = set(report.blocking_stacks()) if report else set()
        self.hold_back = HoldBack(ctx.env, inventory.suspensions(), ctx.options.manual)

    def execute(self) -> None:
        for wave_index, wave in enumerate(graph.waves(self.deps)):
            stacks = [s for s in wave if s in self.selected]
            for stack_result in map_threads(lambda name: self._stack(name, wave_index), stacks, 4, "stack"):
                self.result.stacks.append(stack_result)
                if stack_result.state in (StackState.FAILED, StackState.BLOCKED):
                    self.failed.add(stack_result.stack)
                self.hold_back.ended(stack_result.stack, stack_result.state)

    def _stack(self, name: str, wave: int) -> StackResult:
        started = time.monotonic()
        stack = self.env.stack(name)
        report = self.rendered.policy_report
        result = StackResult(stack=name, state=StackState.PENDING, wave=wave,
                             violations=list(report.for_stack(name)) if report else [])
        try:
            self._run_stack(stack, result)
        except ReconcilerError as exc:
            result.state, result.reason = StackState.FAILED, str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must fail one stack, not the pass or the daemon
            log.exception("stack crashed", env=self.env.name, stack=name)
            result.state, result.reason = StackState.FAILED, f"internal error: {exc.__class__.__name__}: {exc}"
        if name in self.inventory.recovered:
            note = f"inventory record rebuilt from {self.inventory.recovered[name]} labelled live object(s)"
            result.reason = f"{result.reason}; {note}" if result.reason else note
        result.duration_s = round(time.monotonic() - started, 3)
        if not self.dry_run and result.state not in (StackState.SUSPENDED, StackState.HELD):  # its record stays
            try:
                record_stack(self.inventory, self.env, self.rendered, name, result, self._applying.get(name, []),
                             self.owners, self.ctx.hash_key, never_created=never_created(self._planned.get(name, [])))
            except ReconcilerError as exc:
                result.reason = (result.reason + "; " if result.reason else "") + f"state not saved: {exc}"
        self.emit(name, wave, "done", f"{result.state.value}{': ' + result.reason if result.reason else ''}")
        return result

    def _run_stack(self, stack: StackConfig, result: StackResult) -> None:
        state, why = self.hold_back.why(stack)
        if why and not self.dry_run:
            result.state, result.reason = state, why
            return
        if why:
            result.notes.append(f"{why} (a sync would not apply it)")
        single = len(self.selected) < len(self.deps)
        if not gate(stack, result, deps=self.deps, failed=self.failed, rendered=self.rendered,
                    policy_blocked=stack.name in self.policy_blocked, dry_run=self.dry_run,
                    unhealthy=lambda: self._unhealthy_dependencies(stack) if single else []):
            return
        objects = sort_for_apply(self.ctx.owned(o) for o in self.rendered.objects.get(stack.name, []))
        self._applying[stack.name] = objects
        record = self.inventory.record(stack.name)
        if refuse_empty_render(stack, objects, record, result):
            return
        if not self.dry_run and settled(self.ctx.live, self.ctx.settled.get(stack.name), objects, record,
                                        self.rendered.digests.get(stack.name), owner_label_value(self.env.name, stack.name)):
            result.state, result.healthy = StackState.UNCHANGED, record.healthy
            return
        owner = owner_label_value(self.env.name, stack.name)
        seen = self.ctx.live.changes(owner) if self.ctx.live else None
        self.emit(stack.name, result.wave, "plan", f"planning {len(objects)} objects")
        planned = plan_stack(self.ctx.cluster_for(stack.name), objects, self.ctx.selector(stack.name), record.objects,
                             force=self.env.sync.correct_drift, owner=self.ctx.ownership(stack.name),
                             write_single=not self.dry_run)
        self._planned[stack.name] = planned
        attach_locators(self.rendered, self.env, stack, planned)
        result.drifted = sum(1 for p in planned if p.drift)
        if not self.env.sync.correct_drift:
            for entry in planned:
                if entry.drift:
                    entry.action = Action.UNCHANGED  # detect-only: reported as drift, neither planned nor reverted
        prunes = prune_candidates(record.objects, self.owners) if self.env.sync.prune and not self.rendered.errors else []
        prunes, unserved = without_unserved(self.ctx.cluster_for(stack.name), prunes) if prunes else ([], [])
        if unserved:
            result.notes.append(gone_note(unserved))
            self.emit(stack.name, result.wave, "prune", result.notes[-1])
        result.changes = [p.change() for p in planned] + prunes
        if guard_mass_prune(result, len(prunes), len(record.objects), self.env.sync.mass_prune,
                            self.ctx.options.allow_mass_prune, self.dry_run):
            return
        if self.dry_run:
            conclude_plan(result, planned, self.env.sync.correct_drift)
            return
        self._apply(stack, result, planned, objects, prunes, record)
        clean = result.state in (StackState.APPLIED, StackState.UNCHANGED) and not result.drifted and not prunes
        if seen is not None and clean and not result.conflicts:
            self.settled[stack.name] = (self.rendered.digests.get(stack.name), seen)

    def _unhealthy_dependencies(self, stack: StackConfig) -> list[tuple[str, str]]:
        """A single-stack sync runs only on top of dependencies that were applied and are healthy now."""
        problems = []
        for name in stack.depends_on:
            record = self.inventory.record(name)
            if record.state not in ("applied", "unchanged") or record.commit is None:
                problems.append((name, f"last result {record.state or 'never synced'}"))
                continue
            not_ready = unready(self.ctx.cluster_for(name), [self.ctx.owned(o) for o in self.rendered.objects.get(name, [])],
                                self.ctx.selector(name), self.health_rules)
            if not_ready:
                problems.append((name, not_ready[0]))
        return problems

    def _apply(self, stack: StackConfig, result: StackResult, planned: list[PlannedObject],
               objects: list[K8sObject], prunes, record: StackRecord) -> None:
        cluster = self.ctx.cluster_for(stack.name)
        outcome = apply_planned(cluster, planned, recreate_immutable=stack.recreate_on_immutable,
                                take_ownership=self.env.sync.correct_drift, should_stop=self.should_stop,
                                on_applied=lambda n: self.emit(stack.name, result.wave, "apply", "applied", n))
        result.conflicts, result.applied = outcome.conflicts, outcome.applied
        if any(p.confirm_at_apply for p in planned):  # confirmed by its apply: the fields the server changed
            result.changes = [p.change() for p in planned] + list(prunes)
        if outcome.error:
            result.state, result.reason = StackState.FAILED, outcome.error
            return
        if self.env.sync.wait_for_health and (outcome.applied or record.healthy is not True):
            self.emit(stack.name, result.wave, "health", "waiting for health")
            healthy, why = wait_healthy(cluster, objects, self.env.health_timeout(stack), self.should_stop,
                                        selector=self.ctx.selector(stack.name), rules=self.health_rules)
            result.healthy = healthy
            if not healthy:
                result.state, result.reason = StackState.FAILED, why
                return
        else:
            result.healthy = record.healthy if not outcome.applied else None
        if self.rendered.errors and self.env.sync.prune:
            result.reason = f"prune postponed until every stack renders (failed: {', '.join(sorted(self.rendered.errors))})"
        if prunes:
            self.emit(stack.name, result.wave, "prune", f"pruning {len(prunes)} objects")
            _, skipped = prune_objects(cluster, [c.id for c in prunes], self.ctx.selector(stack.name),
                                       allow_namespaces=stack.prune_namespaces)
            if skipped:
                result.reason = "not pruned: " + "; ".join(skipped[:3])
        result.state = StackState.APPLIED if outcome.applied or prunes or result.notes else StackState.UNCHANGED
        notes = (result.reason, drift_note(result, self.env.sync.correct_drift), *result.notes)
        result.reason = "; ".join(part for part in notes if part)


def attach_locators(rendered: RenderedEnv, env: EnvironmentConfig, stack: StackConfig,
                    planned: list[PlannedObject]) -> None:
    """Objects the render could not name a file for learn it when an error asks (`pipeline.locate`: one
    more build of the stack, only then); not for a pinned stack, rendered from another commit's tree."""
    if stack.name in rendered.pinned or all(p.obj.source_file for p in planned):
        return
    path = env.in_repository(stack.path)
    files = functools.cache(lambda: object_files(rendered.tree, path, stack.name))
    for entry in planned:
        entry.locate = lambda oid: files().get(oid)


def conclude_plan(result: StackResult, planned: list[PlannedObject], correct_drift: bool) -> None:
    """A plan's (a dry run's) result: failed with the first errors, else planned or unchanged."""
    errors = [p for p in planned if p.error]
    if note := unchecked_note(planned):
        result.notes.append(note)
    result.conflicts = [f"{p.obj.id}: {p.conflict}" for p in planned if p.conflict]
    if errors:
        result.state = StackState.FAILED
        result.reason = "; ".join(f"{p.where}: {p.error}" for p in errors[:3])
    else:
        result.state = StackState.PLANNED if result.changed or result.notes else StackState.UNCHANGED
        result.reason = "; ".join(part for part in (drift_note(result, correct_drift), *result.notes) if part)


def drift_note(result: StackResult, correct_drift: bool) -> str:
    if result.drifted and not correct_drift:
        return f"{result.drifted} object(s) drifted (correction off)"
    return ""
