"""Drift on watch events: a managed object edited in the cluster is reported (and, with
`correctDrift`, restored) within moments, without waiting for the next pass.

Each environment's engine keeps a live cache (kube.livecache); every change it sees is queued here,
debounced, and checked against what the object's stack last applied (the objects, not a pass: the
events of one burst together, with one inventory read; a change of status alone is not drift). While a
pass runs for the environment, events are left to it: the pass ends with a full drift check anyway,
and comparing half-applied state with the previous commit would be wrong; so are the events of an
environment another replica leads (its leader judges them). A correction is one apply;
an object corrected three times within a minute is being fought over by another controller, so
correction pauses and an alert says so instead of looping.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Any, Callable

from reconciler.daemon.alerts import AlertRouter, EnvState
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import Alert, AlertKind
from reconciler.daemon.worker import EnvWorker
from reconciler.logs import get_logger, redact_text
from reconciler.objects import ObjectId, group_of
from reconciler.pipeline.drift import SKIPPED, SUSPENDED
from reconciler.results import DriftItem, DriftReport, utcnow

log = get_logger("reconciler.daemon.livedrift")

FLAP_LIMIT = 3
FLAP_WINDOW_S = 60.0
DEBOUNCE_S = 0.05
RETRY_SKIPPED_S = 5.0  # a correction skipped while another writer holds the environment is judged again then
RETRY_DEFERRED_S = 0.5  # events seen while a pass ran are looked at again this often until it is over


class LiveDrift:
    """One thread that turns watch events of every environment into drift verdicts and corrections."""

    def __init__(self, envs: dict[str, Any], engines: dict[str, Any], states: dict[str, EnvState],
                 workers: dict[str, EnvWorker], alerts: AlertRouter, metrics: Metrics,
                 may_apply: Callable[[str], bool]) -> None:
        self.envs, self.engines, self.states, self.workers = envs, engines, states, workers
        self.may_apply = may_apply
        self.alerts, self.metrics = alerts, metrics
        self._pending: dict[tuple[str, ObjectId], float] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._corrections: dict[tuple[str, ObjectId], deque[float]] = defaultdict(deque)
        self._deferred: dict[str, dict[ObjectId, float]] = defaultdict(dict)  # env -> events seen during a pass
        self._thread = threading.Thread(target=self._loop, name="live-drift", daemon=True)

    def attach(self, env: str) -> None:
        """Start watching what `env` manages (the watches begin with its first pass)."""
        engine = self.engines[env]
        if not hasattr(engine, "enable_live_cache"):
            return
        engine.enable_live_cache().subscribe(lambda event, env=env: self._on_event(env, event))
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for engine in self.engines.values():
            live = getattr(engine, "live", None)
            if live is not None:
                live.stop()

    def _on_event(self, env: str, event: Any) -> None:
        if event.status_only:  # a controller reporting status: no field Git sets has moved
            return
        oid = ObjectId(group_of(event.key.api_version), event.key.kind, event.key.namespace, event.name)
        with self._cond:
            self._pending.setdefault((env, oid), event.seen_at)
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
            time.sleep(DEBOUNCE_S)  # let a burst of events about one object arrive, then look once
            with self._cond:
                batch, self._pending = self._pending, {}
            by_env: dict[str, dict[ObjectId, float]] = defaultdict(dict)
            for (env, oid), seen_at in batch.items():
                by_env[env][oid] = seen_at
            for env, seen in by_env.items():
                if self._stopping:  # a stopping daemon checks nothing more (its cluster may be going away)
                    return
                try:
                    self._check(env, seen)
                except Exception as exc:  # noqa: BLE001 - one environment's failure must not stop the others
                    log.warning("live drift check failed", env=env, objects=len(seen), first=str(next(iter(seen))),
                                error=redact_text(str(exc)))

    def _check(self, env: str, seen: dict[ObjectId, float]) -> None:
        """Judge a burst, unless a pass will (running, queued, recording itself) or another replica leads the
        environment: its leader judges the same events, and here they are most often the leader's own pass
        writing, which this replica cannot tell from an edit (in a fleet push, each follower read an
        inventory and reported drift for environments it did not lead)."""
        worker = self.workers[env]
        current = worker.current
        if not self.may_apply(env):
            self.metrics.live_batches.labels(env, "not_leader").inc()
            return
        if current is not None and current.state.done:
            for oid, seen_at in seen.items():  # the pass is recording itself: its drift check may have read before
                self._defer(env, oid, seen_at)
            self.metrics.live_batches.labels(env, "deferred").inc()
            return
        if current is not None or worker.pending is not None:
            self.metrics.live_batches.labels(env, "left_to_pass").inc()
            return  # a pass is running or queued: it ends with a full drift check
        self._judge(env, seen)
        self.metrics.live_batches.labels(env, "judged").inc()

    def _defer(self, env: str, oid: ObjectId, seen_at: float) -> None:
        """Keep an event that came after a pass applied, while it records itself and checks drift, and look
        again shortly (one timer per environment): an edit made as a pass ends must not wait for the next
        poll to be seen."""
        with self._cond:
            first = not self._deferred[env]
            self._deferred[env].setdefault(oid, seen_at)
        if first:
            timer = threading.Timer(RETRY_DEFERRED_S, self._release, args=(env,))
            timer.daemon = True
            timer.start()

    def _release(self, env: str) -> None:
        with self._cond:
            for oid, seen_at in self._deferred.pop(env, {}).items():
                self._pending.setdefault((env, oid), seen_at)
            self._cond.notify_all()

    def _judge(self, env: str, seen: dict[ObjectId, float]) -> None:
        """Judge the objects of one burst together: one inventory read, one report, one alert check."""
        engine = self.engines[env]
        found = engine.objects_drift(list(seen))
        state = self.states[env]
        report = _merged(env, state.last_drift, found)
        self.alerts.on_drift(report, state, [s.name for s in self.envs[env].stacks], "live")
        now = time.time()
        for seen_at in seen.values():
            self.metrics.drift_latency.labels(env).observe(max(0.0, now - seen_at))
        self.metrics.observe_live_cache(env, engine.live.stats())
        for oid, items in found.items():
            if items and self.envs[env].sync.correct_drift and self.may_apply(env):
                self._correct(env, oid, items[0])

    def _correct(self, env: str, oid: ObjectId, item: DriftItem) -> None:
        recent = self._corrections[(env, oid)]
        now = time.monotonic()
        while recent and now - recent[0] > FLAP_WINDOW_S:
            recent.popleft()
        if len(recent) >= FLAP_LIMIT:
            self.metrics.live_corrections.labels(env, "paused").inc()
            self.alerts.notifier.publish([_flapping_alert(env, oid, item, len(recent))], [])
            return
        recent.append(now)
        error = self.engines[env].correct_object(oid)
        if error == SKIPPED:  # another writer (a `reconciler sync`) holds the environment: look again later
            recent.pop()
            self.metrics.live_corrections.labels(env, "skipped").inc()
            timer = threading.Timer(RETRY_SKIPPED_S, self._recheck, args=(env, oid))
            timer.daemon = True
            timer.start()
            return
        if error == SUSPENDED:
            recent.pop()
            self.metrics.live_corrections.labels(env, "suspended").inc()
            return
        self.metrics.live_corrections.labels(env, "failed" if error else "corrected").inc()
        if error:
            log.warning("live correction failed", env=env, object=str(oid), error=redact_text(error))

    def _recheck(self, env: str, oid: ObjectId) -> None:
        with self._cond:
            self._pending.setdefault((env, oid), time.time())
            self._cond.notify_all()


def _merged(env: str, previous: DriftReport | None, found: dict[ObjectId, list[DriftItem]]) -> DriftReport:
    """The environment's drift report with these objects' items replaced (first-seen times kept)."""
    before = previous.items if previous else []
    first_seen = {str(i.id): i.first_seen for i in before if i.id in found}
    fresh = [item for items in found.values() for item in items]
    for item in fresh:
        item.first_seen = first_seen.get(str(item.id)) or utcnow()
    kept = [i for i in before if i.id not in found]
    return DriftReport(env=env, commit=previous.commit if previous else None, items=kept + fresh)


def _flapping_alert(env: str, oid: ObjectId, item: DriftItem, times: int) -> Alert:
    fields = ", ".join(f.path for f in item.fields[:5]) or "the object"
    return Alert(AlertKind.DRIFT_DETECTED, env, item.stack, "warning",
                 f"{env}: {oid} is changed back as soon as it is corrected; correction paused",
                 f"corrected {times} times within {FLAP_WINDOW_S:.0f}s, and {fields} changed again each time: another "
                 "controller or person is fighting this object. Find who writes it (managedFields) and stop one side; "
                 "correction resumes after a quiet minute.", fingerprint=f"flapping {oid}")
