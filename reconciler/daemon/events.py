"""Server-sent events for the status page: "something changed" for the whole daemon, and one run's
progress as it happens, so the page follows a sync live instead of polling every few seconds.

The streams look at the daemon's in-memory state a few times a second (no API server request, no
lock held between looks) and send only when what they watch has changed; a comment every 15 s keeps
proxies from closing an idle stream. A stream ends when the client goes, the run is done, or the
daemon stops.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

if TYPE_CHECKING:
    from reconciler.daemon.runs import Run
    from reconciler.daemon.service import Daemon

LOOK_EVERY_S = 0.2
KEEPALIVE_S = 15.0


def message(event: str, data: Any) -> str:
    """One server-sent event (`event:` and a one-line JSON `data:`)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def daemon_version(daemon: "Daemon") -> tuple:
    """What the status page shows changes exactly when this does: runs and their progress, alerts, drift
    checks and live drift, pins and stack results (each pass records a new last run)."""
    runs = tuple((r.id, r.state.value, r.events) for r in daemon.runbook.recent(20))
    history = daemon.notifier.history
    alerts = (len(history), history[-1].created_at if history else None)
    envs = tuple((state.last_drift.checked_at if state.last_drift else None,
                  len(state.last_drift.items) if state.last_drift else 0,
                  state.last_run.id if state.last_run else None) for state in daemon.states.values())
    return runs, alerts, envs


async def status_changes(daemon: "Daemon", gone: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
    """`changed` whenever the daemon's state moves on (and once at the start), until the client goes."""
    seen: tuple | None = None
    beat = time.monotonic()
    while not daemon.stopping and not await gone():
        version = daemon_version(daemon)
        if version != seen:
            seen, beat = version, time.monotonic()
            yield message("changed", {"at": time.time()})
        elif time.monotonic() - beat > KEEPALIVE_S:
            beat = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(LOOK_EVERY_S)


async def run_progress(daemon: "Daemon", run: "Run", gone: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
    """`progress` with each new progress event of `run` (from the first), `state` when its state changes,
    and `done` with the whole record when it has finished."""
    sent, state = 0, None
    while not daemon.stopping and not await gone():
        for item in [item for item in run.progress if item.get("seq", 0) > sent]:
            yield message("progress", item)
            sent = item["seq"]
        if run.state != state:
            state = run.state
            yield message("state", {"state": state.value, "message": run.message})
        if run.state.done:
            yield message("done", run.to_dict(detail=True))
            return
        await asyncio.sleep(LOOK_EVERY_S)
