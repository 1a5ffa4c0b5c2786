"""The long-running reconciler: schedules passes per environment and reports what they did.

Shape:
- One `EnvWorker` per environment owns a thread and a one-slot queue. That makes single-flight
  true by construction: at most one pass runs per environment, and any number of triggers during
  a pass collapse into exactly one queued follow-up pass.
- APScheduler only *requests* passes (poll on the env's interval with jitter, and one-shot retries
  after failures with exponential backoff); it never runs a pass itself.
- The engine is injected (`engine_factory`), so the daemon does not know how a pass works.
- Leadership (optional) gates applying: a replica that does not hold the env's lease runs no pass,
  and one that loses it mid-pass stops through the engine's `should_stop` hook (between objects).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.daemon.leader import ElectionLoop, LeaseElector, LeaseSettings
from reconciler.logs import bound, get_logger, redact_text
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import AlertKind, Notifier, alerts_for_drift, alerts_for_pass, recovered_alert
from reconciler.results import DriftReport, PassResult, StackState, to_jsonable

log = get_logger("reconciler.daemon.service")


class Engine(Protocol):
    """What the daemon needs from `reconciler.engine.Engine` (see docs/ENGINE_API.md)."""

    api_client: Any

    def sync(self, stack: str | None = None, dry_run: bool = False, progress: Any = None,
             run_id: str | None = None, should_stop: Callable[[], bool] | None = None) -> PassResult: ...

    def drift(self) -> DriftReport: ...

    def state_ref(self) -> tuple[str, str]: ...


EngineFactory = Callable[[Any], Engine]


def default_engine_factory(cache_dir: Path, kubeconfig: Path | None = None,
                           context: str | None = None) -> EngineFactory:
    """Real engines, one cache folder per environment (so env threads never share a Git checkout)."""

    def make(env: Any) -> Engine:
        from reconciler.pipeline.engine import Engine as RealEngine

        return RealEngine(env, cache_dir=cache_dir / env.name, kubeconfig=kubeconfig, context=context)

    return make


def default_identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class DaemonSettings:
    jitter_s: float | None = None  # None: 10% of the interval, at most 30 s
    backoff_base_s: float = 10.0
    backoff_max_s: float = 600.0
    poll: bool = True
    initial_pass: bool = True
    drift_check: bool = True
    history: int = 200
    identity: str = field(default_factory=default_identity)
    lease: LeaseSettings | None = None  # None: no election, this replica applies everything
    stop_timeout_s: float = 30.0

    def jitter_for(self, interval_s: float) -> float:
        return self.jitter_s if self.jitter_s is not None else min(interval_s * 0.1, 30.0)

    def backoff(self, failures: int) -> float:
        """Exponential: base, 2x base, 4x base, ... capped at max."""
        return min(self.backoff_base_s * (2 ** max(0, failures - 1)), self.backoff_max_s)


class RunState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    FORWARDED = "forwarded"

    @property
    def done(self) -> bool:
        return self not in (RunState.QUEUED, RunState.RUNNING)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Run:
    """One requested pass: its triggers, progress and outcome (what GET /api/runs/<id> shows)."""

    env: str
    stack: str | None
    sources: list[str]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: RunState = RunState.QUEUED
    created_at: datetime = field(default_factory=_utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: list[dict[str, Any]] = field(default_factory=list)
    result: PassResult | None = None
    message: str = ""

    def to_dict(self, detail: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "env": self.env, "stack": self.stack, "sources": list(self.sources),
            "state": self.state.value, "done": self.state.done, "message": self.message,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "commit": self.result.commit.sha if self.result and self.result.commit else None,
        }
        if detail:
            data["progress"] = list(self.progress)
            data["result"] = summarize_pass(self.result) if self.result else None
        return data


def summarize_pass(result: PassResult) -> dict[str, Any]:
    """A PassResult for the HTTP API: every stack, its changes and violations, secrets already masked by the engine."""
    data = to_jsonable(result)
    data["ok"] = result.ok
    data["total_requests"] = result.total_requests
    return data


class RunBook:
    """The last N runs by id (thread-safe)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, run: Run) -> None:
        with self._lock:
            self._runs[run.id] = run
            while len(self._runs) > self._size:
                self._runs.popitem(last=False)

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def recent(self, limit: int = 20, env: str | None = None) -> list[Run]:
        with self._lock:
            runs = [r for r in reversed(self._runs.values()) if env is None or r.env == env]
        return runs[:limit]


class EnvWorker:
    """Single-flight for one environment: one running pass, at most one queued follow-up."""

    def __init__(self, env: str, execute: Callable[[Run], None], runbook: RunBook, metrics: Metrics) -> None:
        self.env = env
        self._execute = execute
        self._runbook = runbook
        self._metrics = metrics
        self._cond = threading.Condition()
        self._pending: Run | None = None
        self._current: Run | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f"env-{env}", daemon=True)
        self.passes_started = 0

    def start(self) -> None:
        self._thread.start()

    def request(self, source: str, stack: str | None = None) -> Run:
        """Queue a pass, or join the one already queued (widening it to the whole env if stacks differ)."""
        with self._cond:
            pending = self._pending
            if pending is not None:
                pending.sources.append(source)
                if pending.stack != stack:
                    pending.stack = None
                self._metrics.observe_trigger(self.env, source, coalesced=True)
                return pending
            run = Run(env=self.env, stack=stack, sources=[source])
            if self._stopping:
                run.state, run.message = RunState.CANCELLED, "the daemon is shutting down"
            else:
                self._pending = run
                self._cond.notify_all()
            self._runbook.add(run)
            self._metrics.observe_trigger(self.env, source, coalesced=False)
            return run

    @property
    def current(self) -> Run | None:
        return self._current

    @property
    def pending(self) -> Run | None:
        return self._pending

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping:
                    self._cancel_pending()
                    return
                run, self._pending, self._current = self._pending, None, self._pending
                self.passes_started += 1
            try:
                self._execute(run)
            finally:
                with self._cond:
                    self._current = None
                    self._cond.notify_all()

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.state, self._pending.message = RunState.CANCELLED, "the daemon is shutting down"
            self._pending.finished_at = _utcnow()
            self._pending = None

    def wait_idle(self, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._current is None and self._pending is None, timeout_s)

    def stop(self, timeout_s: float) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


@dataclass
class EnvState:
    """What the daemon knows about one environment between passes (served by /api/status)."""

    last_run: Run | None = None
    last_result: PassResult | None = None  # last pass that covered the whole env or a stack
    stack_results: dict[str, Any] = field(default_factory=dict)  # stack -> StackResult of its last pass
    stack_runs: dict[str, datetime] = field(default_factory=dict)
    last_drift: DriftReport | None = None
    last_success_at: datetime | None = None
    failures: int = 0
    not_before: float = 0.0  # wall clock: polls wait until then after failures (backoff)
    failing: bool = False


class Daemon:
    """Wires scheduling, single-flight workers, leadership, metrics and alerts around injected engines."""

    def __init__(self, envs: list[Any], engine_factory: EngineFactory, *, settings: DaemonSettings | None = None,
                 metrics: Metrics | None = None, notifier: Notifier | None = None) -> None:
        self.envs = {env.name: env for env in envs}
        self.settings = settings or DaemonSettings()
        self.metrics = metrics or Metrics()
        self.notifier = notifier or Notifier([], self.metrics)
        self._engine_factory = engine_factory
        self.engines: dict[str, Engine] = {}
        self.runbook = RunBook(self.settings.history)
        self.states = {name: EnvState() for name in self.envs}
        self.workers = {name: EnvWorker(name, self._execute, self.runbook, self.metrics) for name in self.envs}
        self.scheduler = BackgroundScheduler(timezone=timezone.utc)
        self.electors: dict[str, LeaseElector] = {}
        self._election: ElectionLoop | None = None
        self._stopping = threading.Event()
        self._started = False
        self._reachable: tuple[float, bool] = (0.0, False)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        for name, env in self.envs.items():
            self.engines[name] = self._engine_factory(env)
        for worker in self.workers.values():
            worker.start()
        self._schedule_polls()
        self.scheduler.start()
        self._started = True
        if self.settings.lease is not None:
            self._start_election(self.settings.lease)
        elif self.settings.initial_pass:
            for name in self.envs:
                self.trigger(name, "startup")
        log.info("daemon started", envs=sorted(self.envs), identity=self.settings.identity,
                 leader_election=self.settings.lease is not None)

    def _schedule_polls(self) -> None:
        if not self.settings.poll:
            return
        for name, env in self.envs.items():
            interval = float(env.sync.interval_s)
            self.scheduler.add_job(
                self._poll, IntervalTrigger(seconds=interval, jitter=self.settings.jitter_for(interval)),
                args=[name], id=f"poll-{name}", coalesce=True, max_instances=1, misfire_grace_time=None)

    def _start_election(self, lease: LeaseSettings) -> None:
        for name in self.envs:
            self.electors[name] = LeaseElector(self.engines[name].api_client, f"{lease.name_prefix}{name}",
                                               self.settings.identity, lease)
        self._election = ElectionLoop(self.electors, lease, self._on_leadership, self._on_forwarded_request)
        self._election.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Graceful: no new passes, the running one stops between objects, leases are released."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        timeout = self.settings.stop_timeout_s if timeout_s is None else timeout_s
        log.info("daemon stopping")
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for worker in self.workers.values():
            worker.stop(timeout)
        if self._election is not None:
            self._election.stop(release=True)
        self.notifier.flush(min(5.0, timeout))
        self.notifier.close()
        log.info("daemon stopped")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # ---- triggers --------------------------------------------------------------------------

    def trigger(self, env: str, source: str, stack: str | None = None) -> Run:
        """Request a pass. On a replica that does not lead `env`, the request is forwarded to the leader."""
        if env not in self.envs:
            raise KeyError(env)
        if self.settings.lease is not None and not self.may_apply(env):
            return self._forward(env, source, stack)
        return self.workers[env].request(source, stack)

    def _forward(self, env: str, source: str, stack: str | None) -> Run:
        run = Run(env=env, stack=stack, sources=[source], state=RunState.FORWARDED)
        elector = self.electors.get(env)
        payload = json.dumps({"source": source, "stack": stack, "by": self.settings.identity, "run": run.id})
        if elector is not None and elector.request_sync(payload):
            run.message = "this replica does not hold the lease; the request was passed to the leader"
        else:
            run.state, run.message = RunState.SKIPPED, "this replica does not hold the lease and could not reach it"
        run.finished_at = _utcnow()
        self.runbook.add(run)
        return run

    def _on_forwarded_request(self, env: str, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            data = {}
        self.workers[env].request(f"forwarded:{data.get('source', 'unknown')}", data.get("stack"))

    def _poll(self, env: str) -> None:
        if self._stopping.is_set() or time.time() < self.states[env].not_before:
            return  # backing off after failures: the retry job will run the pass
        if self.settings.lease is not None and not self.may_apply(env):
            return
        self.workers[env].request("poll")

    def _on_leadership(self, env: str, leading: bool) -> None:
        self.metrics.observe_leadership(env, leading)
        if leading and not self._stopping.is_set():
            self.workers[env].request("leader-elected")

    def may_apply(self, env: str) -> bool:
        elector = self.electors.get(env)
        if self.settings.lease is None:
            return True
        return elector is not None and elector.is_leader()

    def _should_stop(self, env: str) -> Callable[[], bool]:
        return lambda: self._stopping.is_set() or not self.may_apply(env)

    # ---- one pass --------------------------------------------------------------------------

    def _execute(self, run: Run) -> None:
        if not self.may_apply(run.env):
            run.state, run.message, run.finished_at = RunState.SKIPPED, "not the leader for this env", _utcnow()
            return
        run.state, run.started_at = RunState.RUNNING, _utcnow()
        with bound(env=run.env, run_id=run.id, stack=run.stack):
            started = time.monotonic()
            try:
                result = self.engines[run.env].sync(stack=run.stack, progress=self._progress(run), run_id=run.id,
                                                    should_stop=self._should_stop(run.env))
            except Exception as exc:  # the engine reports failures as data; this is the last resort
                log.exception("pass crashed")
                result = PassResult(env=run.env, run_id=run.id, commit=None, dry_run=False,
                                    error=redact_text(f"{type(exc).__name__}: {exc}"))
            if result.finished_at is None:
                result.finished_at = _utcnow()
            duration = time.monotonic() - started
            self._record(run, result, duration)

    def _progress(self, run: Run) -> Callable[[Any], None]:
        def on_event(event: Any) -> None:
            item = to_jsonable(event)
            item = item if isinstance(item, dict) else {"message": str(item)}
            item.setdefault("at", _utcnow().isoformat())
            run.progress = (run.progress + [item])[-500:]

        return on_event

    def _record(self, run: Run, result: PassResult, duration_s: float) -> None:
        state = self.states[run.env]
        commit = result.commit.sha if result.commit else None
        with bound(commit=commit):
            run.result, run.finished_at = result, _utcnow()
            run.state = RunState.SUCCEEDED if result.ok else RunState.FAILED
            run.message = result.error or _describe(result)
            state.last_run, state.last_result = run, result
            for stack in result.stacks:
                state.stack_results[stack.stack] = stack
                state.stack_runs[stack.stack] = run.finished_at
            self.metrics.observe_pass(result, duration_s)
            self._alert_on_pass(result, state)
            self._update_backoff(run.env, result, state)
            log.info("pass finished", result=run.state.value, duration_s=round(duration_s, 3),
                     stacks={s.stack: s.state.value for s in result.stacks}, api_requests=result.total_requests)
            if self.settings.drift_check and not result.error and not self._stopping.is_set():
                self._check_drift(run)

    def _alert_on_pass(self, result: PassResult, state: EnvState) -> None:
        kinds = (AlertKind.POLICY_VIOLATION, AlertKind.SYNC_FAILED, AlertKind.SYNC_BLOCKED)
        scopes = [(k.value, result.env, s.stack) for k in kinds for s in result.stacks]
        scopes += [(AlertKind.SYNC_FAILED.value, result.env, "")]
        self.notifier.publish(alerts_for_pass(result), scopes)
        if result.ok and state.failing:
            self.notifier.send_now(recovered_alert(result))
        state.failing = not result.ok
        if result.ok and not result.dry_run:
            state.last_success_at = result.finished_at

    def _update_backoff(self, env: str, result: PassResult, state: EnvState) -> None:
        failed = bool(result.error) or any(s.state is StackState.FAILED for s in result.stacks)
        stopped = self._stopping.is_set() or not self.may_apply(env)
        if not failed or stopped:
            state.failures, state.not_before = 0, 0.0
            self.metrics.consecutive_failures.labels(env).set(0)
            return
        state.failures += 1
        delay = self.settings.backoff(state.failures)
        state.not_before = time.time() + delay
        self.metrics.consecutive_failures.labels(env).set(state.failures)
        log.warning("pass failed, backing off", failures=state.failures, retry_in_s=delay)
        if self.scheduler.running:
            self.scheduler.add_job(self.workers[env].request, DateTrigger(_utcnow() + timedelta(seconds=delay)),
                                   args=["retry"], id=f"retry-{env}", replace_existing=True)

    def _check_drift(self, run: Run) -> None:
        try:
            report = self.engines[run.env].drift()
        except Exception as exc:
            log.warning("drift check failed", error=redact_text(str(exc)))
            return
        self.states[run.env].last_drift = report
        self.metrics.observe_drift(report, [s.name for s in self.envs[run.env].stacks])
        self.notifier.publish(alerts_for_drift(report, run.id), [(AlertKind.DRIFT_DETECTED.value, run.env, "")])

    # ---- what the HTTP API reads -----------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if not self._started or self._stopping.is_set():
            return False, "not started" if not self._started else "stopping"
        if not self.scheduler.running:
            return False, "scheduler not running"
        if not self.cluster_reachable():
            return False, "cluster not reachable"
        return True, "ok"

    def cluster_reachable(self, cache_s: float = 5.0) -> bool:
        checked_at, ok = self._reachable
        if time.monotonic() - checked_at < cache_s:
            return ok
        from kubernetes import client

        ok = True
        for engine in self.engines.values():
            try:
                client.VersionApi(engine.api_client).get_code(_request_timeout=3)
            except Exception:
                ok = False
                break
        self._reachable = (time.monotonic(), ok)
        return ok

    def next_run(self, env: str) -> datetime | None:
        """The next poll, or while backing off after failures, the retry."""
        if not self.scheduler.running:
            return None
        backing_off = time.time() < self.states[env].not_before
        job = self.scheduler.get_job(f"retry-{env}" if backing_off else f"poll-{env}")
        return job.next_run_time if job is not None else None

    def status(self) -> dict[str, Any]:
        return {"identity": self.settings.identity, "envs": [self.env_status(name) for name in self.envs],
                "runs": [r.to_dict(detail=False) for r in self.runbook.recent(20)],
                "alerts": [a.to_dict() for a in self.notifier.history[-20:]]}

    def env_status(self, name: str) -> dict[str, Any]:
        env, state, worker = self.envs[name], self.states[name], self.workers[name]
        drift_by_stack: dict[str, int] = {}
        for item in (state.last_drift.items if state.last_drift else []):
            drift_by_stack[item.stack] = drift_by_stack.get(item.stack, 0) + 1
        nxt = self.next_run(name)
        return {
            "name": name,
            "source": {"url": redact_text(str(env.source.url)), "branch": env.source.branch, "path": env.source.path},
            "interval_s": env.sync.interval_s,
            "leader": self.may_apply(name) if self.settings.lease is not None else None,
            "running": worker.current.to_dict(detail=False) if worker.current else None,
            "queued": worker.pending.to_dict(detail=False) if worker.pending else None,
            "next_run": nxt.isoformat() if nxt else None,
            "consecutive_failures": state.failures,
            "last_success_at": state.last_success_at.isoformat() if state.last_success_at else None,
            "last_run": state.last_run.to_dict(detail=False) if state.last_run else None,
            "drift_checked_at": state.last_drift.checked_at.isoformat() if state.last_drift else None,
            "drift_count": len(state.last_drift.items) if state.last_drift else None,
            "stacks": [self._stack_status(name, s, drift_by_stack) for s in env.stacks],
        }

    def _stack_status(self, env: str, stack: Any, drift: dict[str, int]) -> dict[str, Any]:
        state = self.states[env]
        result = state.stack_results.get(stack.name)
        last = state.last_result
        violations = [to_jsonable(v) for v in result.violations] if result else []
        display = result.state.value if result else None
        if display in ("applied", "unchanged") and drift.get(stack.name):
            display = "drifted"
        return {
            "name": stack.name, "path": stack.path, "depends_on": list(stack.depends_on),
            "state": result.state.value if result else None, "display_state": display or "pending",
            "reason": result.reason if result else "", "blocked_by": list(result.blocked_by) if result else [],
            "healthy": result.healthy if result else None,
            "commit": last.commit.sha if last and last.commit and result else None,
            "changes": len(result.changed) if result else 0,
            "drift_count": drift.get(stack.name, 0),
            "violations": violations,
            "last_run": state.stack_runs[stack.name].isoformat() if stack.name in state.stack_runs else None,
        }

    def drift_report(self, env: str) -> dict[str, Any] | None:
        report = self.states[env].last_drift
        return to_jsonable(report) if report is not None else None

    def watched(self) -> list[tuple[str, str, str]]:
        """(env, repository URL, branch) for webhook matching."""
        from reconciler.config import source_url

        return [(name, source_url(env), env.source.branch) for name, env in self.envs.items()]


def _describe(result: PassResult) -> str:
    counts: dict[str, int] = {}
    for stack in result.stacks:
        counts[stack.state.value] = counts.get(stack.state.value, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no stacks"
