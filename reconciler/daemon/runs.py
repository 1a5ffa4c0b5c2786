"""Run records: one requested pass, its triggers, progress and outcome, and the last N of them by id.

What `GET /api/runs/<id>` and the status page show; the worker fills a Run in as its pass goes.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from reconciler.pipeline.fetchmemo import Moment
from reconciler.results import PassResult, to_jsonable, utcnow


READS = ("plan", "preview")
"""Actions that only read: queued behind the environment's passes, never coalesced, recorded nowhere."""


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


@dataclass
class Run:
    """One requested pass: its triggers, progress and outcome (what GET /api/runs/<id> shows)."""

    env: str
    stack: str | None
    sources: list[str]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: RunState = RunState.QUEUED
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: list[dict[str, Any]] = field(default_factory=list)  # the last 500 progress events
    events: int = 0  # progress events in all (a stream following the run sends each once)
    result: PassResult | None = None
    message: str = ""
    action: str = "sync"  # or "rollback", "unpin" (never coalesced with a sync), or a read: "plan", "preview"
    options: dict[str, Any] = field(default_factory=dict)  # rollback: to, dependents, by; unpin: nothing
    report: Any = None  # a read's answer (plan, preview), JSON-ready: it changes no state of the daemon
    asked: Moment = field(default_factory=Moment.now)  # its latest trigger: the branch head is wanted as of then

    def to_dict(self, detail: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "env": self.env, "stack": self.stack, "sources": list(self.sources), "action": self.action,
            "state": self.state.value, "done": self.state.done, "message": self.message,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "commit": self.result.commit.sha if self.result and self.result.commit else None,
        }
        if detail:
            data["progress"] = list(self.progress)
            data["result"] = summarize_pass(self.result) if self.result else None
            data["report"] = self.report
            data["options"] = {k: v for k, v in self.options.items() if isinstance(v, (str, bool, int, type(None)))}
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


def describe_pass(result: PassResult) -> str:
    counts: dict[str, int] = {}
    for stack in result.stacks:
        counts[stack.state.value] = counts.get(stack.state.value, 0) + 1
    # a suspend, resume or unpin has no stacks: its notice says what it did
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "; ".join(result.notices) or "no stacks"
