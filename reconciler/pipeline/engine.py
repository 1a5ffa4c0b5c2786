"""One reconcile pass of one environment: Git revision to healthy stacks.

fetch -> render (all stacks, cached) -> policy (whole environment) -> per wave, stacks in
parallel: plan -> apply (changed objects only, kind order) -> health -> prune -> record. A failed
or policy-blocked stack blocks its dependents; independent stacks go on. Failures are data in the
PassResult, never exceptions out of `sync`.
"""

from __future__ import annotations

import copy
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Callable

import structlog

from reconciler import graph
from reconciler.pipeline.apply import apply_planned, preferred_version, prune_objects
from reconciler.kube.cluster import Cluster, new_api_client
from reconciler.config import EnvironmentConfig, StackConfig, source_url
from reconciler.pipeline.diff import desired_hash
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.kube.health import unready as unready_objects
from reconciler.kube.health import wait_healthy
from reconciler.pipeline.inventory import (MANAGED_BY, MANAGED_BY_LABEL, OWNER_ANNOTATION, OWNER_LABEL, SYSTEM_NAMESPACE,
                                  Inventory, StackRecord, now_iso, owner_label_value)
from reconciler.objects import K8sObject, ObjectId, parse_objects, sort_for_apply
from reconciler.pipeline.plan import Ownership, PlannedObject, plan_stack
from reconciler.pipeline.render import RenderCache, render_stack
from reconciler.results import (Action, CommitInfo, DriftItem, DriftKind, DriftReport, EnvStatus, ObjectChange,
                                PassResult, StackResult, StackState, StackStatus, utcnow)
from reconciler.pipeline.source import GitSource

log = structlog.get_logger("reconciler.pipeline.engine")


@dataclass(frozen=True)
class ProgressEvent:
    run_id: str
    env: str
    stack: str | None
    wave: int | None
    phase: str  # fetch, render, policy, plan, apply, health, prune, done
    message: str
    objects_applied: int = 0


@dataclass
class RenderedEnv:
    """Everything a pass knows before touching the cluster."""

    commit: CommitInfo
    tree: Path
    objects: dict[str, list[K8sObject]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    policy_report: object | None = None

    def owners(self) -> dict[ObjectId, str]:
        """Which stack renders each object: prune and ownership hand-offs look at the whole environment."""
        return {obj.id: stack for stack, objects in self.objects.items() for obj in objects}

    def check_unique(self, env_file: str) -> None:
        """The same object in two stacks is a configuration error, found before anything is applied."""
        seen: dict[ObjectId, K8sObject] = {}
        for objects in self.objects.values():
            for obj in objects:
                first = seen.setdefault(obj.id, obj)
                if first is not obj:
                    raise ConfigError(
                        f"{env_file}: {obj.id} is rendered by stack {first.stack!r} ({first.source_file or '?'}) "
                        f"and by stack {obj.stack!r} ({obj.source_file or '?'})",
                        fix="keep the object in one stack; the other can dependsOn it")


Progress = Callable[[ProgressEvent], None]


class Engine:
    """Reconciles one environment. Thread-safe for one pass at a time (the daemon single-flights)."""

    def __init__(self, env: EnvironmentConfig, cache_dir: Path, kubeconfig: Path | None = None,
                 context: str | None = None, api_client=None) -> None:
        self.env = env
        self.cache_dir = Path(cache_dir)
        self.source = GitSource(source_url(env), env.source.branch, self.cache_dir)
        self.render_cache = RenderCache(self.cache_dir / "render")
        self._kubeconfig = kubeconfig or (Path(env.cluster.kubeconfig) if env.cluster.kubeconfig else None)
        self._context = context or env.cluster.context
        self._api_client = api_client
        self._cluster: Cluster | None = None

    # --- wiring ----------------------------------------------------------------------------

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            if self._api_client is None:
                self._api_client = new_api_client(self._kubeconfig, self._context, self.env.cluster.in_cluster)
            self._cluster = Cluster(self._api_client)
        return self._cluster

    @property
    def api_client(self):
        return self.cluster.api_client

    def state_ref(self) -> tuple[str, str]:
        return SYSTEM_NAMESPACE, f"reconciler-{self.env.name}"

    # --- render and policy (no cluster) --------------------------------------------------------

    def render(self, commit: CommitInfo | None = None, progress: Progress | None = None,
               run_id: str = "", revision: str | None = None) -> RenderedEnv:
        """Fetch (unless given a commit), export that commit's tree, render every stack, evaluate policy."""
        emit = _emitter(progress, run_id, self.env.name)
        if commit is None:
            emit(None, None, "fetch", f"fetching {self.env.source.branch}")
            commit = self.source.fetch()
            if revision:
                commit = self.source.resolve(revision)
        tree = self.source.export(commit.sha)
        return self._render_tree(commit, tree, emit, lambda p, sha=commit.sha: self.source.tree_hash(sha, p))

    def render_worktree(self, directory: Path) -> RenderedEnv:
        """Render files as they are on disk (uncommitted changes included): `policy check --worktree`."""
        commit = CommitInfo(sha="worktree", author="", message=str(directory), committed_at=utcnow())
        return self._render_tree(commit, directory, _emitter(None, "", self.env.name), None)

    def _render_tree(self, commit: CommitInfo, tree: Path, emit, object_id) -> RenderedEnv:
        rendered = RenderedEnv(commit=commit, tree=tree)
        root = self.env.source.path.strip("/")
        for stack in self.env.stacks:
            emit(stack.name, None, "render", f"rendering {stack.path}")
            path = f"{root}/{stack.path}" if root else stack.path
            try:
                output = render_stack(tree, stack.name, path, self.render_cache if object_id else None, object_id)
                rendered.objects[stack.name] = parse_objects(output.text, stack=stack.name, base_dir=path)
            except ReconcilerError as exc:
                rendered.errors[stack.name] = str(exc)
        emit(None, None, "policy", "evaluating policy")
        rendered.policy_report = self._evaluate_policy(rendered)
        return rendered

    def _evaluate_policy(self, rendered: RenderedEnv):
        from reconciler.policy import evaluate, load_policies

        root = self.env.source.path.strip("/")
        directory = rendered.tree / root / self.env.policy.directory if root else rendered.tree / self.env.policy.directory
        if not directory.is_dir():
            return None
        policies = load_policies(directory, self.env.name, mode_override=self.env.policy.mode)
        return evaluate(rendered.objects, policies, date.today())

    # --- the pass -----------------------------------------------------------------------------

    def plan(self, stack: str | None = None, progress: Progress | None = None, run_id: str | None = None) -> PassResult:
        return self.sync(stack=stack, dry_run=True, progress=progress, run_id=run_id)

    def sync(self, stack: str | None = None, dry_run: bool = False, progress: Progress | None = None,
             run_id: str | None = None, should_stop: Callable[[], bool] | None = None) -> PassResult:
        run_id = run_id or uuid.uuid4().hex[:12]
        result = PassResult(env=self.env.name, run_id=run_id, commit=None, dry_run=dry_run)
        bound = log.bind(env=self.env.name, run_id=run_id)
        selected = {self.env.stack(stack).name} if stack else {s.name for s in self.env.stacks}
        try:
            rendered = self.render(progress=progress, run_id=run_id)
            result.commit = rendered.commit
            bound = bound.bind(commit=rendered.commit.short)
            rendered.check_unique(self.env.file)
            inventory = Inventory(self.cluster, self.env.name)
            self.cluster.reset_counts()
            inventory.load(create=not dry_run)
        except ReconcilerError as exc:
            result.error = str(exc)
            result.finished_at = utcnow()
            bound.error("pass failed before any stack", error=result.error)
            return result
        run = _PassRun(self, rendered, inventory, result, selected, dry_run, progress, should_stop or (lambda: False))
        run.execute()
        result.api_requests = self.cluster.request_counts()
        result.finished_at = utcnow()
        bound.info("pass finished", ok=result.ok, stacks={s.stack: s.state.value for s in result.stacks},
                   api_requests=result.total_requests)
        _emitter(progress, run_id, self.env.name)(None, None, "done", "pass finished")
        return result

    # --- drift and status -----------------------------------------------------------------------

    def drift(self) -> DriftReport:
        """Live state against what each stack *last applied* (its recorded commit, rendered again):
        modified fields, missing objects, and objects still labelled ours that Git no longer has.
        A newer commit not yet applied is pending work, not drift."""
        inventory = Inventory(self.cluster, self.env.name)
        inventory.load(create=False)
        head = self.source.fetch()
        report = DriftReport(env=self.env.name, commit=head.sha)
        first_seen = inventory.drift_first_seen()
        seen_now: dict[str, str] = {}
        renders: dict[str, RenderedEnv] = {}
        for stack in self.env.stacks:
            record = inventory.record(stack.name)
            if record.commit is None:
                continue
            if record.commit not in renders:
                renders[record.commit] = self.render(self._commit_or_head(record.commit, head))
            objects = [self.owned(o) for o in renders[record.commit].objects.get(stack.name, [])]
            for item in self._stack_drift(stack.name, objects, record):
                key = str(item.id)
                seen_now[key] = first_seen.get(key, now_iso())
                item.first_seen = datetime.fromisoformat(seen_now[key])
                report.items.append(item)
        inventory.save_drift_first_seen(seen_now)
        return report

    def _commit_or_head(self, sha: str, head: CommitInfo) -> CommitInfo:
        try:
            return self.source.resolve(sha)
        except ReconcilerError:
            return head  # the applied commit is gone from the remote (force-push): compare with head

    def _stack_drift(self, stack: str, objects: list[K8sObject], record: StackRecord) -> list[DriftItem]:
        items = []
        planned = plan_stack(self.cluster, objects, self.selector(stack), record.objects, force=False,
                             owner=self.ownership(stack))
        for entry in planned:
            if entry.error:
                continue
            if entry.action is Action.CREATE:
                items.append(DriftItem(stack, entry.obj.id, DriftKind.MISSING))
            elif entry.action is Action.UPDATE:
                items.append(DriftItem(stack, entry.obj.id, DriftKind.MODIFIED, entry.fields))
        wanted = {str(o.id) for o in objects}
        for extra in sorted(set(record.objects) - wanted):
            oid = ObjectId.parse(extra)
            if self._still_ours(stack, oid):
                items.append(DriftItem(stack, oid, DriftKind.UNMANAGED))
        return items

    def _still_ours(self, stack: str, oid: ObjectId) -> bool:
        live = self.cluster.get(preferred_version(self.cluster, oid), oid.kind, oid.namespace, oid.name)
        labels = ((live or {}).get("metadata") or {}).get("labels") or {}
        return labels.get(OWNER_LABEL) == owner_label_value(self.env.name, stack)

    def status(self) -> EnvStatus:
        inventory = Inventory(self.cluster, self.env.name)
        inventory.load(create=False)
        stacks = []
        for stack in self.env.stacks:
            record = inventory.record(stack.name)
            last = datetime.fromisoformat(record.last_run) if record.last_run else None
            stacks.append(StackStatus(stack.name, record.commit, record.state, record.reason, record.healthy,
                                      record.drift_count, record.violations, last))
        return EnvStatus(self.env.name, stacks)

    # --- helpers used by the pass ------------------------------------------------------------------

    def ownership(self, stack: str) -> Ownership:
        return Ownership(self.env.name, stack, self.env.stack(stack).allow_adoption)

    def selector(self, stack: str) -> str:
        return f"{OWNER_LABEL}={owner_label_value(self.env.name, stack)}"

    def owned(self, obj: K8sObject) -> K8sObject:
        """The object as we apply it: labelled and annotated as owned by `<env>/<stack>`."""
        manifest = copy.deepcopy(obj.manifest)
        meta = manifest.setdefault("metadata", {})
        meta.setdefault("labels", {}).update({OWNER_LABEL: owner_label_value(self.env.name, obj.stack),
                                              MANAGED_BY_LABEL: MANAGED_BY})
        meta.setdefault("annotations", {})[OWNER_ANNOTATION] = f"{self.env.name}/{obj.stack}"
        return K8sObject(manifest=manifest, stack=obj.stack, source_file=obj.source_file)


def _emitter(progress: Progress | None, run_id: str, env: str):
    def emit(stack: str | None, wave: int | None, phase: str, message: str, applied: int = 0) -> None:
        if progress is not None:
            progress(ProgressEvent(run_id, env, stack, wave, phase, message, applied))
    return emit


class _PassRun:
    """The state of one pass while it walks the waves."""

    def __init__(self, engine: Engine, rendered: RenderedEnv, inventory: Inventory, result: PassResult,
                 selected: set[str], dry_run: bool, progress: Progress | None, should_stop: Callable[[], bool]):
        self.engine = engine
        self.env = engine.env
        self.rendered = rendered
        self.inventory = inventory
        self.result = result
        self.selected = selected
        self.dry_run = dry_run
        self.should_stop = should_stop
        self.emit = _emitter(progress, result.run_id, engine.env.name)
        self.failed: set[str] = set()
        self.deps = engine.env.dependencies
        self.owners = rendered.owners()

    def execute(self) -> None:
        blocking = set(self.rendered.policy_report.blocking_stacks()) if self.rendered.policy_report else set()
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="stack") as pool:
            for wave_index, wave in enumerate(graph.waves(self.deps)):
                stacks = [s for s in wave if s in self.selected]
                results = list(pool.map(lambda name: self._stack(name, wave_index, blocking), stacks))
                for stack_result in results:
                    self.result.stacks.append(stack_result)
                    if stack_result.state in (StackState.FAILED, StackState.BLOCKED):
                        self.failed.add(stack_result.stack)

    def _violations(self, stack: str) -> list:
        report = self.rendered.policy_report
        return list(report.for_stack(stack)) if report else []

    def _stack(self, name: str, wave: int, blocking: set[str]) -> StackResult:
        started = time.monotonic()
        stack = self.env.stack(name)
        result = StackResult(stack=name, state=StackState.PENDING, wave=wave, violations=self._violations(name))
        try:
            self._run_stack(stack, result, blocking)
        except ReconcilerError as exc:
            result.state, result.reason = StackState.FAILED, str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must fail one stack, not the pass or the daemon
            log.exception("stack crashed", env=self.env.name, stack=name)
            result.state, result.reason = StackState.FAILED, f"internal error: {exc.__class__.__name__}: {exc}"
        result.duration_s = round(time.monotonic() - started, 3)
        if not self.dry_run:
            try:
                self._record(stack, result)
            except ReconcilerError as exc:
                result.reason = (result.reason + "; " if result.reason else "") + f"state not saved: {exc}"
        self.emit(name, wave, "done", f"{result.state.value}{': ' + result.reason if result.reason else ''}")
        return result

    def _run_stack(self, stack: StackConfig, result: StackResult, blocking: set[str]) -> None:
        blockers = graph.blockers(self.deps, stack.name, self.failed) if not self.dry_run else []
        if blockers:
            result.state, result.blocked_by = StackState.BLOCKED, blockers
            result.reason = "blocked by " + ", ".join(blockers)
            return
        if stack.name in self.rendered.errors:
            result.state, result.reason = StackState.FAILED, self.rendered.errors[stack.name]
            return
        unhealthy = self._unhealthy_dependencies(stack) if len(self.selected) < len(self.deps) else []
        if unhealthy and not self.dry_run:
            result.state, result.blocked_by = StackState.BLOCKED, [name for name, _ in unhealthy]
            result.reason = "dependencies not healthy: " + "; ".join(f"{n} ({why})" for n, why in unhealthy)
            return
        if stack.name in blocking:
            enforced = [v for v in result.violations if v.mode == "enforce" and not v.excepted_by]
            result.state, result.blocked_by = StackState.BLOCKED, ["policy"]
            result.reason = f"{len(enforced)} enforced policy violation(s): " + "; ".join(
                f"{v.rule} on {v.object}" for v in enforced[:3])
            return
        objects = sort_for_apply(self.engine.owned(o) for o in self.rendered.objects.get(stack.name, []))
        record = self.inventory.record(stack.name)
        if not objects and record.objects:
            result.state = StackState.FAILED
            result.reason = (f"stack {stack.name!r} rendered no objects but owns {len(record.objects)}: refusing "
                             "to prune everything (fix the overlay, or delete the stack from the environment)")
            return
        self.emit(stack.name, result.wave, "plan", f"planning {len(objects)} objects")
        planned = plan_stack(self.engine.cluster, objects, self.engine.selector(stack.name), record.objects,
                             force=self.env.sync.correct_drift, owner=self.engine.ownership(stack.name))
        result.drifted = sum(1 for p in planned if p.drift)
        if not self.env.sync.correct_drift:
            for entry in planned:
                if entry.drift:
                    entry.action = Action.UNCHANGED  # detect-only: reported as drift, neither planned nor reverted
        prunes = self._prune_candidates(stack, objects, record)
        result.changes = [p.change() for p in planned] + prunes
        if self.dry_run:
            errors = [p for p in planned if p.error]
            result.conflicts = [f"{p.obj.id}: {p.conflict}" for p in planned if p.conflict]
            if errors:
                result.state = StackState.FAILED
                result.reason = "; ".join(f"{p.where}: {p.error}" for p in errors[:3])
            else:
                result.state = StackState.PLANNED if result.changed else StackState.UNCHANGED
                result.reason = self._drift_note(result)
            return
        self._apply(stack, result, planned, objects, prunes, record)

    def _unhealthy_dependencies(self, stack: StackConfig) -> list[tuple[str, str]]:
        """A single-stack sync runs only on top of dependencies that were applied and are healthy now."""
        problems = []
        for name in stack.depends_on:
            record = self.inventory.record(name)
            if record.state not in ("applied", "unchanged") or record.commit is None:
                problems.append((name, f"last result {record.state or 'never synced'}"))
                continue
            objects = [self.engine.owned(o) for o in self.rendered.objects.get(name, [])]
            unready = unready_objects(self.engine.cluster, objects)
            if unready:
                problems.append((name, unready[0]))
        return problems

    def _prune_candidates(self, stack: StackConfig, objects: list[K8sObject], record: StackRecord):
        """What the stack owned and *no stack of the environment* renders any more. An object moved to
        another stack is handed over, never deleted; while any stack fails to render, nothing is pruned
        (its objects are unknown, and one of them may be what this stack gave away)."""
        if not self.env.sync.prune or self.rendered.errors:
            return []
        wanted = {str(o.id) for o in objects} | {str(i) for i in self.owners}
        return [ObjectChange(ObjectId.parse(i), Action.PRUNE) for i in sorted(set(record.objects) - wanted)]

    def _handed_off(self, stack: str, record: StackRecord) -> dict[str, str]:
        """Objects this stack owned that another stack now renders but has not recorded yet: kept in this
        stack's inventory until the new owner has them, so a failed hand-off can never orphan them."""
        kept = {}
        for key, digest in record.objects.items():
            new_owner = self.owners.get(ObjectId.parse(key))
            if new_owner and new_owner != stack and key not in self.inventory.record(new_owner).objects:
                kept[key] = digest
        return kept

    def _apply(self, stack: StackConfig, result: StackResult, planned: list[PlannedObject],
               objects: list[K8sObject], prunes, record: StackRecord) -> None:
        cluster = self.engine.cluster
        outcome = apply_planned(cluster, planned, recreate_immutable=stack.recreate_on_immutable,
                                take_ownership=self.env.sync.correct_drift, should_stop=self.should_stop,
                                on_applied=lambda n: self.emit(stack.name, result.wave, "apply", "applied", n))
        result.conflicts = outcome.conflicts
        if outcome.error:
            result.state, result.reason = StackState.FAILED, outcome.error
            return
        if self.env.sync.wait_for_health and (outcome.applied or record.healthy is not True):
            self.emit(stack.name, result.wave, "health", "waiting for health")
            healthy, why = wait_healthy(cluster, objects, self.env.health_timeout(stack), self.should_stop)
            result.healthy = healthy
            if not healthy:
                result.state, result.reason = StackState.FAILED, why
                return
        else:
            result.healthy = record.healthy if not outcome.applied else None
        if self.rendered.errors and self.env.sync.prune:
            failed = ", ".join(sorted(self.rendered.errors))
            result.reason = f"prune postponed until every stack renders (failed: {failed})"
        if prunes:
            self.emit(stack.name, result.wave, "prune", f"pruning {len(prunes)} objects")
            _, skipped = prune_objects(cluster, [c.id for c in prunes], self.engine.selector(stack.name),
                                            allow_namespaces=stack.prune_namespaces)
            if skipped:
                result.reason = "not pruned: " + "; ".join(skipped[:3])
        result.state = StackState.APPLIED if outcome.applied or prunes else StackState.UNCHANGED
        note = self._drift_note(result)
        result.reason = "; ".join(part for part in (result.reason, note) if part)

    def _drift_note(self, result: StackResult) -> str:
        if result.drifted and not self.env.sync.correct_drift:
            return f"{result.drifted} object(s) drifted (correction off)"
        return ""

    def _record(self, stack: StackConfig, result: StackResult) -> None:
        record = self.inventory.record(stack.name)
        before = dict(record.__dict__, last_run=None)
        now = now_iso()
        record.last_run, record.state, record.reason = now, result.state.value, result.reason
        record.violations = len(result.violations)
        record.drift_count = result.drifted if not self.env.sync.correct_drift else 0
        if result.state in (StackState.APPLIED, StackState.UNCHANGED):
            record.commit = self.rendered.commit.sha
            record.healthy = result.healthy
            previous = record.objects
            record.objects = {str(o.id): desired_hash(self.engine.owned(o).manifest)
                              for o in self.rendered.objects.get(stack.name, [])}
            record.objects.update(self._handed_off(stack.name, StackRecord(objects=previous)))
            if self.rendered.errors and self.env.sync.prune:  # prune postponed: keep owning what was not pruned
                for key, digest in previous.items():
                    record.objects.setdefault(key, digest)
            if result.state is StackState.APPLIED:
                record.applied_at = now
        elif result.state is StackState.FAILED:
            record.healthy = result.healthy
            for obj in self.rendered.objects.get(stack.name, []):  # some may be applied: never lose ownership
                record.objects.setdefault(str(obj.id), "")
        if dict(record.__dict__, last_run=None) == before:
            return  # a steady-state pass writes nothing
        self.inventory.save_record(stack.name, record)
