"""After a pass: the run record, the environment's state, metrics and alerts, the backoff, the drift check.

One place that knows everything a finished pass changes, so the daemon's pass loop stays short.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from reconciler.daemon.alerts import AlertRouter, EnvState
from reconciler.daemon.runs import Run, RunState, describe_pass
from reconciler.daemon.settings import Engine
from reconciler.daemon.timing import PassTiming
from reconciler.logs import bound, get_logger, redact_text
from reconciler.results import Action, PassResult, StackState, utcnow

log = get_logger("reconciler.daemon")


class PassRecorder:
    """Records finished passes of every environment."""

    def __init__(self, envs: dict[str, Any], states: dict[str, EnvState], alerts: AlertRouter,
                 timing: PassTiming, drift_check: bool, commit_status: Any = None) -> None:
        self.envs = envs
        self.commit_status = commit_status
        self.states = states
        self.alerts = alerts
        self.timing = timing
        self.drift_check = drift_check

    def record(self, run: Run, result: PassResult, duration_s: float, engine: Engine, *, stopped: bool,
               retry: Callable[[str], Any]) -> None:
        state = self.states[run.env]
        with bound(commit=result.commit.sha if result.commit else None):
            run.result, run.finished_at = result, utcnow()
            run.state = RunState.SUCCEEDED if result.ok else RunState.FAILED
            run.message = result.error or describe_pass(result)
            state.last_run = run
            if run.action == "sync" or result.stacks:  # an unpin changes pins, not what a pass last did
                state.last_result = result
            for stack in result.stacks:
                state.stack_results[stack.stack] = stack
                state.stack_runs[stack.stack] = run.finished_at
                state.stack_commits[stack.stack] = result.commit.sha if result.commit else None
                if stack.changes:
                    state.stack_objects[stack.stack] = sum(1 for c in stack.changes if c.action is not Action.PRUNE)
            self.alerts.on_pass(result, state, duration_s)
            if self.commit_status is not None and run.action == "sync" and not stopped:
                self.commit_status.publish(engine.env if hasattr(engine, "env") else self.envs[run.env], result)
            failed = bool(result.error) or any(s.state is StackState.FAILED for s in result.stacks)
            self.timing.after_pass(run.env, failed, stopped, retry)
            self.timing.follow_interval(run.env, float(self.envs[run.env].sync.interval_s))
            if result.held_until is not None:  # what a sync window held back lands when it opens
                self.timing.when_window_opens(run.env, result.held_until, retry)
            log.info("pass finished", result=run.state.value, duration_s=round(duration_s, 3),
                     stacks={s.stack: s.state.value for s in result.stacks}, api_requests=result.total_requests)
            if self.drift_check and not result.error and not stopped:
                self._check_drift(run, engine)

    def _check_drift(self, run: Run, engine: Engine) -> None:
        """As of the run's latest trigger, as its pass wanted the branch head: the pass's look at the
        remote (or any since) answers it."""
        try:
            report = engine.drift(run.asked)
        except Exception as exc:
            log.warning("drift check failed", error=redact_text(str(exc)))
            return
        self.alerts.on_drift(report, self.states[run.env], [s.name for s in self.envs[run.env].stacks], run.id)


class Reachability:
    """Can every environment's API server be reached? Asked by /readyz; cached for a few seconds."""

    def __init__(self, cache_s: float = 5.0) -> None:
        self.cache_s = cache_s
        self._last: tuple[float, bool] = (-1e9, False)

    def check(self, engines: Iterable[Engine]) -> bool:
        checked_at, ok = self._last
        if time.monotonic() - checked_at < self.cache_s:
            return ok
        from kubernetes import client

        ok = True
        for engine in engines:
            try:
                client.VersionApi(engine.api_client).get_code(_request_timeout=3)
            except Exception:
                ok = False
                break
        self._last = (time.monotonic(), ok)
        return ok
