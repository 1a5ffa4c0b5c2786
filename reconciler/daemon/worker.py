"""Single-flight per environment: one thread, one running pass, at most one queued follow-up.

Any number of triggers during a pass collapse into exactly one queued pass, so a burst of webhooks
or polls never stacks passes up.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from reconciler.daemon.metrics import Metrics
from reconciler.daemon.runs import READS, Run, RunBook, RunState
from reconciler.pipeline.fetchmemo import Moment
from reconciler.results import utcnow


MAX_READS = 4
"""Plans and previews one environment holds in line; more are refused (each costs a render and dry runs)."""


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
        self._reads: deque[Run] = deque()  # plans and previews: after the queued pass, one at a time
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f"env-{env}", daemon=True)
        self.passes_started = 0

    def start(self) -> None:
        self._thread.start()

    def request(self, source: str, stack: str | None = None, action: str = "sync",
                options: dict | None = None) -> Run:
        """Queue a pass, or join the one already queued (widening it to the whole env if stacks differ).
        A rollback or unpin takes the queued slot's place (it is followed by a sync anyway). A read (plan,
        preview) waits in a line of its own and leaves the queued pass alone."""
        if action in READS:
            return self._request_read(source, stack, action, options or {})
        with self._cond:
            pending = self._pending
            if pending is not None and action != "sync":
                pending.state, pending.message = RunState.CANCELLED, f"replaced by a queued {action}"
                pending.finished_at = utcnow()
                self._pending = pending = None
            if pending is not None and pending.action != "sync":
                self._metrics.observe_trigger(self.env, source, coalesced=True)
                return pending  # a sync asked for while a rollback waits: the rollback's follow-up covers it
            if pending is not None:
                pending.sources.append(source)
                pending.options.update(options or {})
                if pending.stack != stack:
                    pending.stack = None
                pending.asked = Moment.now()  # the head as of this trigger: a push it joins is seen
                self._metrics.observe_trigger(self.env, source, coalesced=True)
                return pending
            run = Run(env=self.env, stack=stack, sources=[source], action=action, options=dict(options or {}))
            if self._stopping:
                run.state, run.message = RunState.CANCELLED, "the daemon is shutting down"
            else:
                self._pending = run
                self._cond.notify_all()
            self._runbook.add(run)
            self._metrics.observe_trigger(self.env, source, coalesced=False)
            return run

    def _request_read(self, source: str, stack: str | None, action: str, options: dict) -> Run:
        run = Run(env=self.env, stack=stack, sources=[source], action=action, options=dict(options))
        with self._cond:
            if self._stopping or len(self._reads) >= MAX_READS:
                run.state, run.finished_at = RunState.CANCELLED, utcnow()
                run.message = "the daemon is shutting down" if self._stopping else \
                    f"{MAX_READS} plans or previews already wait for this environment; ask again when one is done"
            else:
                self._reads.append(run)
                self._cond.notify_all()
        self._runbook.add(run)
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
                self._cond.wait_for(lambda: self._pending is not None or self._reads or self._stopping)
                if self._stopping:
                    self._cancel_pending()
                    return
                if self._pending is not None:
                    run, self._pending, self._current = self._pending, None, self._pending
                    self.passes_started += 1
                else:
                    run = self._current = self._reads.popleft()
            try:
                self._execute(run)
            finally:
                with self._cond:
                    self._current = None
                    self._cond.notify_all()

    def _cancel_pending(self) -> None:
        for run in [r for r in (self._pending, *self._reads) if r is not None]:
            run.state, run.message = RunState.CANCELLED, "the daemon is shutting down"
            run.finished_at = utcnow()
        self._pending = None
        self._reads.clear()

    def wait_idle(self, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._current is None and self._pending is None and not self._reads,
                                       timeout_s)

    def stop(self, timeout_s: float) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
