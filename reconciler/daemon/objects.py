"""What the status page's stack and object views read: a stack's objects (filtered, searched, paged)
and one object's drift as a diff.

The object list of a stack is built from the inventory, the render and the live cache (see
pipeline.object_view) and kept, keyed by what changes it: the stack's last pass, the last drift
check, and the watch events seen on its objects (their health). The page asks for a 2,000-object
stack in pages, and opening it again costs nothing until one of those moves on. Without a live
cache (`--no-live`) nothing says when health changed, so a list is kept for a few seconds only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from reconciler.pipeline.object_view import (HEALTH_STATES, ObjectRow, StackObjects, live_changes, stack_objects,
                                             unified_diff)
from reconciler.results import to_jsonable

if TYPE_CHECKING:
    from reconciler.daemon.service import Daemon

FILTERS = ("all", "unhealthy", "drifted", "violations", *HEALTH_STATES)
KEEP_S = 3.0
"""How long a built object list answers for its stack without a live cache to say when it changed."""


class ObjectViews:
    """Object lists per (environment, stack), kept briefly; thread-safe (HTTP handlers run in a pool)."""

    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self._kept: dict[tuple[str, str], tuple[tuple, float, StackObjects]] = {}
        self._lock = threading.Lock()

    def stack(self, env: str, stack: str) -> StackObjects:
        key = (env, stack)
        version = self._version(env, stack)
        with self._lock:
            kept = self._kept.get(key)
        fresh = kept is not None and (version[-1] is not None or time.monotonic() - kept[1] < KEEP_S)
        if kept is not None and kept[0] == version and fresh:
            return kept[2]
        state = self.daemon.states[env]
        result = state.stack_results.get(stack)
        env_commit = state.last_result.commit.sha if state.last_result and state.last_result.commit else None
        built = stack_objects(self.daemon.engines[env], stack, state.last_drift.items if state.last_drift else [],
                              result.violations if result else [], state.stack_commits.get(stack) or env_commit,
                              result.reason if result else "")
        with self._lock:
            self._kept[key] = (version, time.monotonic(), built)
        return built

    def _version(self, env: str, stack: str) -> tuple:
        state = self.daemon.states[env]
        return (state.stack_runs.get(stack), state.last_drift.checked_at if state.last_drift else None,
                len(state.last_drift.items) if state.last_drift else 0, live_changes(self.daemon.engines[env], stack))

    def page(self, env: str, stack: str, *, show: str, search: str, offset: int, limit: int) -> dict[str, Any]:
        """One page of a stack's objects that pass the filter and the search, with counts over all of them."""
        built = self.stack(env, stack)
        words = search.lower().split()
        matched = [row for row in built.rows if _shown(row, show) and all(w in _haystack(row) for w in words)]
        return {
            "env": env, "stack": stack, "commit": built.commit, "applied": built.applied,
            "render_error": built.render_error, "total": len(built.rows), "matched": len(matched),
            "offset": offset, "counts": counts(built.rows),
            "items": [asdict(row) for row in matched[offset:offset + limit]],
        }

    def detail(self, env: str, stack: str, object_id: str) -> dict[str, Any] | None:
        """One object: its row, and its drift field by field with a unified diff (Git against live)."""
        row = next((r for r in self.stack(env, stack).rows if r.id == object_id), None)
        if row is None:
            return None
        state = self.daemon.states[env]
        item = next((i for i in (state.last_drift.items if state.last_drift else [])
                     if i.stack == stack and str(i.id) == object_id), None)
        fields = item.fields if item else []
        return {"object": asdict(row), "drift": item.kind.value if item else "",
                "first_seen": item.first_seen.isoformat() if item and item.first_seen else None,
                "checked_at": state.last_drift.checked_at.isoformat() if state.last_drift else None,
                "fields": to_jsonable(fields), "diff": unified_diff(object_id, fields) if fields else ""}


def counts(rows: list[ObjectRow]) -> dict[str, int]:
    """How many objects each filter shows."""
    return {name: sum(1 for row in rows if _shown(row, name)) for name in FILTERS}


def _shown(row: ObjectRow, show: str) -> bool:
    if show == "all":
        return True
    if show == "unhealthy":
        return row.health in ("progressing", "degraded", "missing")
    if show == "drifted":
        return bool(row.drift)
    if show == "violations":
        return bool(row.violations)
    return row.health == show


def _haystack(row: ObjectRow) -> str:
    return f"{row.kind}/{row.namespace}/{row.name} {row.owner}".lower()
