"""The long-running reconciler: schedules passes per environment and reports what they did.

Shape (one module per job, this one wires them):
- `worker.EnvWorker`, one per environment, owns a thread and a one-slot queue: at most one pass runs
  per environment, and any number of triggers during a pass collapse into one queued follow-up.
- `timing.PassTiming` only *requests* passes: polls on the env's interval with jitter, and one-shot
  retries after failures with exponential backoff.
- `runs` keeps run records; `alerts.AlertRouter` turns results into metrics and alerts;
  `status` renders what the HTTP API shows.
- The engine is injected (`settings.EngineFactory`), so the daemon does not know how a pass works.
- Leadership (optional) gates applying: a replica that does not hold the env's lease runs no pass,
  and one that loses it mid-pass stops through the engine's `should_stop` hook (between objects).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from collections.abc import Mapping
from typing import Any, Callable, Iterator

from reconciler.daemon.actions import run_read_safely, run_write_safely
from reconciler.daemon.alerts import AlertRouter, EnvState
from reconciler.daemon.commitstatus import CommitStatusPublisher
from reconciler.daemon.leadership import Leadership
from reconciler.daemon.livedrift import LiveDrift
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import Notifier
from reconciler.daemon.recorder import PassRecorder, Reachability
from reconciler.daemon.runs import READS, Run, RunBook, RunState, summarize_pass
from reconciler.daemon.settings import DaemonSettings, Engine, EngineFactory, default_engine_factory, default_identity
from reconciler.daemon.status import daemon_status, env_status
from reconciler.daemon.timing import PassTiming
from reconciler.daemon.worker import EnvWorker
from reconciler.logs import bound, get_logger
from reconciler.parallel import map_threads
from reconciler.results import to_jsonable, utcnow

FORWARD_THREADS = 8
"""Sync requests a push forwards to other replicas' environments at once (each one Lease PATCH)."""

log = get_logger("reconciler.daemon")

__all__ = ["Daemon", "DaemonSettings", "Engine", "EngineFactory", "EnvState", "Run", "RunBook", "RunState",
           "default_engine_factory", "default_identity", "summarize_pass"]


class EnvironmentsInForce(Mapping):
    """Name -> the environment in force: what its engine's last pass read from Git (stacks added or
    removed by a push), else the file the daemon was started with."""

    def __init__(self, local: dict[str, Any], engines: dict[str, Any]) -> None:
        self._local, self._engines = local, engines

    def __getitem__(self, name: str) -> Any:
        engine = self._engines.get(name)
        return getattr(engine, "env", None) or self._local[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._local)

    def __len__(self) -> int:
        return len(self._local)


class Daemon:
    """Wires workers, timing, leadership, alerts and status around injected engines."""

    def __init__(self, envs: list[Any], engine_factory: EngineFactory, *, settings: DaemonSettings | None = None,
                 metrics: Metrics | None = None, notifier: Notifier | None = None) -> None:
        self.local_envs = {env.name: env for env in envs}
        self.engines: dict[str, Engine] = {}
        self.envs = EnvironmentsInForce(self.local_envs, self.engines)
        self.settings = settings or DaemonSettings()
        self.metrics = metrics or Metrics()
        self.notifier = notifier or Notifier([], self.metrics)
        self.alerts = AlertRouter(self.notifier, self.metrics)
        self._engine_factory = engine_factory
        self.runbook = RunBook(self.settings.history)
        self.states = {name: EnvState() for name in self.envs}
        self.workers = {name: EnvWorker(name, self._execute, self.runbook, self.metrics) for name in self.envs}
        self.timing = PassTiming(self.settings, self.metrics, self.states)
        self.scheduler = self.timing.scheduler
        self.commit_status = CommitStatusPublisher(self.settings.commit_status_token, self.settings.status_url)
        self.recorder = PassRecorder(self.envs, self.states, self.alerts, self.timing, self.settings.drift_check,
                                     self.commit_status)
        self.live_drift = LiveDrift(self.envs, self.engines, self.states, self.workers, self.alerts, self.metrics,
                                    self.may_apply)
        self._stopping = threading.Event()
        self.leadership = Leadership(self.settings, self.metrics, self.runbook,
                                     lambda env, source, stack, options: self.workers[env].request(
                                         source, stack, options=options),
                                     self._stopping.is_set)
        self._started = False
        self._reachability = Reachability()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        for name, env in self.local_envs.items():
            self.engines[name] = self._engine_factory(env)
        for worker in self.workers.values():
            worker.start()
        for name in self.envs if self.settings.live else ():
            self.live_drift.attach(name)
        self.timing.schedule_polls(self.envs, self._poll)
        self.scheduler.start()
        self._started = True
        if self.leadership.enabled:
            self.leadership.start({name: engine.api_client for name, engine in self.engines.items()})
            self.leadership.vouch_writer_leases(self.engines)
        elif self.settings.initial_pass:
            for name in self.envs:
                self.trigger(name, "startup")
        log.info("daemon started", envs=sorted(self.envs), identity=self.settings.identity,
                 leader_election=self.settings.lease is not None)

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
        self.leadership.stop()
        self.live_drift.stop()
        self.notifier.flush(min(5.0, timeout))
        self.notifier.close()
        log.info("daemon stopped")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # ---- triggers and leadership -------------------------------------------------------------

    def trigger(self, env: str, source: str, stack: str | None = None, options: dict | None = None) -> Run:
        """Request a pass. On a replica that does not lead `env`, the request is forwarded to the leader."""
        if env not in self.envs:
            raise KeyError(env)
        if not self.may_apply(env):
            return self.leadership.forward(env, source, stack, options)
        return self.workers[env].request(source, stack, options=options)

    def trigger_all(self, envs: list[str], source: str) -> list[Run]:
        """`trigger` for each of `envs` (a push that many follow), results in their order. Forwarding is a
        Lease PATCH per environment another replica leads: `FORWARD_THREADS` at once, not one after
        another (a fleet replica forwarded 66, which under a push's load took seconds)."""
        return map_threads(lambda env: self.trigger(env, source), envs, FORWARD_THREADS, "forward")

    def _poll(self, env: str) -> None:
        if self._stopping.is_set() or self.timing.backing_off(env):
            return  # backing off after failures: the retry job will run the pass
        if self.may_apply(env):
            self.workers[env].request("poll")

    def may_apply(self, env: str) -> bool:
        return self.leadership.may_apply(env)

    def _should_stop(self, env: str) -> Callable[[], bool]:
        return lambda: self._stopping.is_set() or not self.may_apply(env)

    # ---- one pass --------------------------------------------------------------------------

    def _execute(self, run: Run) -> None:
        if run.action in READS:  # plans and previews write nothing: any replica answers them
            return run_read_safely(self.engines[run.env], run, _progress(run))
        if not self.may_apply(run.env):
            run.state, run.message, run.finished_at = RunState.SKIPPED, "not the leader for this env", utcnow()
            return
        run.state, run.started_at = RunState.RUNNING, utcnow()
        with bound(env=run.env, run_id=run.id, stack=run.stack):
            started = time.monotonic()
            result = run_write_safely(self.engines[run.env], run, _progress(run), self._should_stop(run.env))
            stopped = self._stopping.is_set() or not self.may_apply(run.env)
            self.recorder.record(run, result, time.monotonic() - started, self.engines[run.env], stopped=stopped,
                                 retry=self.workers[run.env].request)
            if run.action != "sync" and not stopped:
                self.workers[run.env].request(f"after-{run.action}")  # the other stacks, at the head (or their pins)

    def request_action(self, env: str, action: str, stack: str | None, options: dict[str, Any]) -> Run:
        """Queue a rollback, unpin, suspend, resume (on the leader: never forwarded), plan or preview."""
        if env not in self.envs:
            raise KeyError(env)
        return self.workers[env].request(f"manual-{action}", stack, action=action, options=options)

    # ---- what the HTTP API reads -----------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if not self._started or self._stopping.is_set():
            return False, "not started" if not self._started else "stopping"
        if not self.scheduler.running:
            return False, "scheduler not running"
        if not self._reachability.check(self.engines.values()):
            return False, "cluster not reachable"
        return True, "ok"

    def next_run(self, env: str) -> datetime | None:
        return self.timing.next_run(env)

    def status(self, leader: bool | None = None) -> dict[str, Any]:
        return daemon_status(self, leader)

    def env_status(self, name: str) -> dict[str, Any]:
        return env_status(self, name)

    def drift_report(self, env: str) -> dict[str, Any] | None:
        report = self.states[env].last_drift
        return to_jsonable(report) if report is not None else None

    def watched(self) -> list[tuple[str, str, str]]:
        """(env, repository URL, branch) for webhook matching."""
        from reconciler.config import source_url

        return [(name, source_url(env), env.source.branch) for name, env in self.local_envs.items()]


def _progress(run: Run) -> Callable[[Any], None]:
    """Progress events of the engine, appended to the run (the last 500) for GET /api/runs/<id>."""
    def on_event(event: Any) -> None:
        item = to_jsonable(event)
        item = item if isinstance(item, dict) else {"message": str(item)}
        item.setdefault("at", utcnow().isoformat())
        run.events += 1
        item["seq"] = run.events
        run.progress = (run.progress + [item])[-500:]

    return on_event
