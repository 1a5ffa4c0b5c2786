"""Sync windows: when a pass may apply (Argo CD's `syncWindows`, with its rules).

A window opens at each start of its cron schedule (read in its time zone) and stays open for its
duration. For a stack at a moment: any active `deny` window covering it holds it; else, when any
`allow` window covers it, one of them must be active; else it may apply. A held pass applies,
prunes and corrects nothing and reports what it found; a manual sync goes through only where every
window holding it says `manualSync: true`. The daemon asks for a pass at the moment the window
opens (`next_opening`), so what was held back lands then, not an interval later (argo-cd #21692).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from reconciler.config import EnvironmentConfig, SyncWindowConfig, cron_trigger


def _covers(window: SyncWindowConfig, stack: str) -> bool:
    return not window.stacks or stack in window.stacks


def last_start(window: SyncWindowConfig, at: datetime) -> datetime | None:
    """The start of the window's occurrence active at `at` (start <= at < start + duration), or None."""
    trigger = cron_trigger(window.schedule, window.time_zone)
    length = timedelta(seconds=window.duration_s)
    start = trigger.get_next_fire_time(None, at - length)
    if start is not None and start + length <= at:  # the occurrence that ends exactly now is over
        start = trigger.get_next_fire_time(start, start + timedelta(seconds=1))
    return start if start is not None and start <= at else None


@dataclass(frozen=True)
class Hold:
    """Why a stack may not apply now, and whether a manual sync may."""

    reason: str
    manual_allowed: bool


def hold(env: EnvironmentConfig, stack: str, at: datetime | None = None) -> Hold | None:
    """None when `stack` may apply at `at` (now by default); else why not."""
    at = at or datetime.now(timezone.utc)
    windows = [w for w in env.sync_windows if _covers(w, stack)]
    denying = [w for w in windows if w.kind == "deny" and last_start(w, at) is not None]
    if denying:
        return Hold(f"held by deny window {_name(denying[0])}", all(w.manual_sync for w in denying))
    allows = [w for w in windows if w.kind == "allow"]
    if allows and not any(last_start(w, at) is not None for w in allows):
        return Hold(f"outside every allow window ({', '.join(_name(w) for w in allows)})",
                    all(w.manual_sync for w in allows))
    return None


def next_opening(env: EnvironmentConfig, stacks: list[str], at: datetime | None = None,
                 horizon: timedelta = timedelta(days=8)) -> datetime | None:
    """The first moment after `at` at which every one of `stacks` may apply (minute steps at window
    edges), or None within the horizon."""
    at = at or datetime.now(timezone.utc)
    for moment in sorted(_edges(env, at, at + horizon)):
        if all(hold(env, stack, moment) is None for stack in stacks):
            return moment
    return None


def _edges(env: EnvironmentConfig, start: datetime, end: datetime) -> set[datetime]:
    """Every window start and end between `start` and `end` (where the answer of `hold` can change)."""
    edges: set[datetime] = set()
    for window in env.sync_windows:
        trigger = cron_trigger(window.schedule, window.time_zone)
        active = last_start(window, start)
        if active is not None:
            edges.add(active + timedelta(seconds=window.duration_s))
        fire = trigger.get_next_fire_time(None, start)
        while fire is not None and fire <= end and len(edges) < 2000:
            edges.update({fire, fire + timedelta(seconds=window.duration_s)})
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return {e for e in edges if start < e <= end}


def describe(env: EnvironmentConfig, at: datetime | None = None) -> list[str]:
    """One line per window: active or not, until when, and when it next opens (for status and the page)."""
    at = at or datetime.now(timezone.utc)
    lines = []
    for window in env.sync_windows:
        start = last_start(window, at)
        scope = f" for {', '.join(window.stacks)}" if window.stacks else ""
        if start is not None:
            state = f"active until {(start + timedelta(seconds=window.duration_s)).isoformat(timespec='minutes')}"
        else:
            upcoming = cron_trigger(window.schedule, window.time_zone).get_next_fire_time(None, at)
            state = f"next at {upcoming.isoformat(timespec='minutes')}" if upcoming else "never again"
        lines.append(f"{_name(window)}{scope}: {state}")
    return lines


def _name(window: SyncWindowConfig) -> str:
    hours = window.duration_s / 3600
    length = f"{hours:g}h" if hours >= 1 else f"{window.duration_s / 60:g}m"
    manual = ", manual sync allowed" if window.manual_sync else ""
    return f"{window.kind} '{window.schedule}' {length} {window.time_zone}{manual}"
