"""Each stack's history: the last N commits it applied, with result and health, kept in its inventory record.

One entry per commit, newest first: a pass at the same commit updates that entry's result and health
only when they change (a steady-state pass writes nothing). Messages and reasons are cut short so a
stack's history stays a few KB whatever N is (`rollback.history`, at most 50). Rollback reads it to
find the last commit on which a stack, and its dependents, were healthy.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from reconciler.errors import ReconcilerError
from reconciler.results import CommitInfo, StackResult, StackState, utcnow

_MESSAGE_CHARS = 120
_REASON_CHARS = 200
_RECORDED = (StackState.APPLIED, StackState.UNCHANGED, StackState.FAILED)


class RollbackError(ReconcilerError):
    """No commit to go back to, a revision outside the history, or a target refused by policy."""


def add_entry(history: list[dict[str, Any]], commit: CommitInfo, result: StackResult, limit: int,
              pinned: bool = False) -> list[dict[str, Any]]:
    """`history` with this pass's outcome at `commit` (a new newest entry, or the newest one updated)."""
    if result.state not in _RECORDED:
        return history  # blocked or planned: nothing was applied at this commit
    entry = {"commit": commit.sha, "author": commit.author, "message": commit.message[:_MESSAGE_CHARS],
             "committed_at": commit.committed_at.isoformat(), "result": result.state.value,
             "healthy": result.healthy, "reason": result.reason[:_REASON_CHARS], "pinned": pinned}
    if history and history[0].get("commit") == commit.sha:
        first = history[0]
        if result.state is StackState.UNCHANGED and first.get("result") == StackState.APPLIED.value:
            entry["result"] = StackState.APPLIED.value  # applied at this commit, then found unchanged
        same = all(first.get(k) == entry[k] for k in ("result", "healthy", "pinned"))
        if same:
            return history
        return [{**first, **entry, "at": first.get("at"), "checked_at": utcnow().isoformat()}] + history[1:]
    return ([{**entry, "at": utcnow().isoformat()}] + list(history))[:limit]


def mark_rolled_back(history: list[dict[str, Any]], commit: str, to: str) -> list[dict[str, Any]]:
    """The entry of `commit` notes that it was rolled back (to `to`): automatic rollback happens once per commit."""
    return [{**e, "rolled_back_to": to} if e.get("commit") == commit else e for e in history]


def was_rolled_back(history: Sequence[Mapping[str, Any]], commit: str) -> bool:
    return any(e.get("commit") == commit and e.get("rolled_back_to") for e in history)


def healthy(entry: Mapping[str, Any]) -> bool:
    """Applied (or found unchanged) and not reported unhealthy: health is None when a stack waits for none."""
    return entry.get("result") in ("applied", "unchanged") and entry.get("healthy") is not False


def last_healthy_commit(histories: Mapping[str, Sequence[Mapping[str, Any]]], stack: str) -> str:
    """The newest commit before the stack's newest entry on which `stack` and every other stack of
    `histories` that has one (its dependents) were healthy. RollbackError when there is none."""
    own = list(histories.get(stack) or [])
    if not own:
        raise RollbackError(f"stack {stack!r} has no history yet: nothing to roll back to",
                            fix="sync it first; the history is written by every pass that applies it")
    current = own[0].get("commit")
    for entry in own:
        sha = entry.get("commit")
        if sha == current or not healthy(entry):
            continue
        if all(_healthy_at(histories.get(other) or [], sha) for other in histories if other != stack):
            return str(sha)
    others = sorted(s for s in histories if s != stack)
    together = f" together with {', '.join(others)}" if others else ""
    raise RollbackError(f"no commit in the last {len(own)} of stack {stack!r} was healthy{together} "
                        f"(newest {str(current)[:10]})",
                        fix="give --to REV, or roll back the stack alone with --no-dependents")


def _healthy_at(history: Sequence[Mapping[str, Any]], sha: str) -> bool:
    """A dependent is fine at `sha` if it was healthy there, or never applied it (added later, or
    blocked at it): rolling back does not touch what it has."""
    entry = in_history(history, sha)
    return entry is None or healthy(entry)


def in_history(history: Sequence[Mapping[str, Any]], sha: str) -> Mapping[str, Any] | None:
    return next((e for e in history if e.get("commit") == sha), None)
