"""When passes are requested: polls on each environment's interval (with jitter), and one-shot retries
with exponential backoff after failures. APScheduler only *requests* passes; it never runs one."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.daemon.alerts import EnvState
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.settings import DaemonSettings
from reconciler.logs import get_logger
from reconciler.results import utcnow

log = get_logger("reconciler.daemon")


class PassTiming:
    """The poll and retry jobs of every environment, and the backoff state they follow."""

    def __init__(self, settings: DaemonSettings, metrics: Metrics, states: dict[str, EnvState]) -> None:
        self.settings = settings
        self.metrics = metrics
        self.states = states
        self.scheduler = BackgroundScheduler(timezone=timezone.utc)

    def schedule_polls(self, envs: dict[str, Any], poll: Callable[[str], None]) -> None:
        if not self.settings.poll:
            return
        for name, env in envs.items():
            interval = float(env.sync.interval_s)
            self.scheduler.add_job(
                poll, IntervalTrigger(seconds=interval, jitter=self.settings.jitter_for(interval)),
                args=[name], id=f"poll-{name}", coalesce=True, max_instances=1, misfire_grace_time=None)

    def follow_interval(self, env: str, interval_s: float) -> None:
        """A pass read another `sync.interval` from the environment file in Git: polls follow it from now."""
        job = self.scheduler.get_job(f"poll-{env}") if self.settings.poll and self.scheduler.running else None
        trigger = getattr(job, "trigger", None)
        if job is None or getattr(trigger, "interval", None) is None or trigger.interval.total_seconds() == interval_s:
            return
        log.info("poll interval follows the environment file", env=env, interval_s=interval_s)
        job.reschedule(IntervalTrigger(seconds=interval_s, jitter=self.settings.jitter_for(interval_s)))

    def backing_off(self, env: str) -> bool:
        return time.time() < self.states[env].not_before

    def after_pass(self, env: str, failed: bool, stopped: bool, retry: Callable[[str], Any]) -> None:
        """Reset the backoff after a success (or a stop); after a failure, schedule the retry."""
        state = self.states[env]
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
            self.scheduler.add_job(retry, DateTrigger(utcnow() + timedelta(seconds=delay)),
                                   args=["retry"], id=f"retry-{env}", replace_existing=True,
                                   misfire_grace_time=None)  # a retry that fires late (a busy process) still runs

    def when_window_opens(self, env: str, at: datetime, request: Callable[[str], Any]) -> None:
        """One pass requested the moment a sync window lets held stacks apply (one such job per environment)."""
        if self.scheduler.running:
            log.info("pass held by a sync window", env=env, until=at.isoformat())
            self.scheduler.add_job(request, DateTrigger(at + timedelta(seconds=1)), args=["window-opened"],
                                   id=f"window-{env}", replace_existing=True, misfire_grace_time=None)

    def next_run(self, env: str) -> datetime | None:
        """The next poll, or while backing off after failures, the retry."""
        if not self.scheduler.running:
            return None
        job = self.scheduler.get_job(f"retry-{env}" if self.backing_off(env) else f"poll-{env}")
        return job.next_run_time if job is not None else None
