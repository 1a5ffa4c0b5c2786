"""What `GET /api/status` and the status page show: each environment, its stacks, runs and alerts.

Read-only views over the daemon's state; nothing here changes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.logs import redact_text
from reconciler.pipeline.windows import describe
from reconciler.results import to_jsonable

if TYPE_CHECKING:
    from reconciler.daemon.service import Daemon


def daemon_status(daemon: "Daemon", leader: bool | None = None) -> dict[str, Any]:
    """`leader`: only the environments this replica leads (True) or does not (False); without an election a
    replica leads every environment. Each replica of a fleet serves every environment's entry, and a
    caller that reads each replica for what it leads need not have the others built and sent."""
    names = [name for name in daemon.envs if leader is None or daemon.may_apply(name) == leader]
    return {"identity": daemon.settings.identity, "envs": [env_status(daemon, name) for name in names],
            "runs": [r.to_dict(detail=False) for r in daemon.runbook.recent(20)],
            "alerts": [a.to_dict() for a in daemon.notifier.history[-20:]]}


def env_history(daemon: "Daemon", name: str) -> dict[str, Any]:
    """Each stack's last commits and pin, read from the cluster now (they outlive this process)."""
    return to_jsonable(daemon.engines[name].status())


def env_status(daemon: "Daemon", name: str) -> dict[str, Any]:
    env, state, worker = daemon.envs[name], daemon.states[name], daemon.workers[name]
    drift_by_stack: dict[str, int] = {}
    for item in (state.last_drift.items if state.last_drift else []):
        drift_by_stack[item.stack] = drift_by_stack.get(item.stack, 0) + 1
    nxt = daemon.next_run(name)
    last = state.last_result
    return {
        "name": name,
        "source": {"url": redact_text(str(env.source.url)), "branch": env.source.branch, "path": env.source.path},
        "env_file": env.file,
        "interval_s": env.sync.interval_s,
        "leader": daemon.may_apply(name) if daemon.settings.lease is not None else None,
        "running": worker.current.to_dict(detail=False) if worker.current else None,
        "queued": worker.pending.to_dict(detail=False) if worker.pending else None,
        "next_run": nxt.isoformat() if nxt else None,
        "consecutive_failures": state.failures,
        "last_success_at": state.last_success_at.isoformat() if state.last_success_at else None,
        "last_run": state.last_run.to_dict(detail=False) if state.last_run else None,
        "drift_checked_at": state.last_drift.checked_at.isoformat() if state.last_drift else None,
        "drift_count": len(state.last_drift.items) if state.last_drift else None,
        "pins": {"head": last.commit.sha if last.commit else None, "stacks": dict(last.pins)}
        if last is not None and last.pins else None,
        "notices": list(last.notices) if last is not None else [],
        "windows": describe(getattr(daemon.engines.get(name), "env", env)),
        "held_until": last.held_until.isoformat() if last is not None and last.held_until else None,
        "stacks": [stack_status(daemon, name, s, drift_by_stack) for s in env.stacks],
    }


def stack_status(daemon: "Daemon", env: str, stack: Any, drift: dict[str, int]) -> dict[str, Any]:
    """One stack's entry, made again only when what it is made from changed: a stack's result, like the
    pass it belongs to, is not changed once recorded. Rebuilding every stack of every environment for
    each poll of /api/status was 7% of a fleet replica's CPU during a push."""
    state = daemon.states[env]
    inputs = (stack, state.stack_results.get(stack.name), state.last_result, drift.get(stack.name, 0),
              state.stack_runs.get(stack.name))
    shown = state.shown.get(stack.name)
    if shown is None or any(a is not b for a, b in zip(shown[0][:3], inputs[:3])) or shown[0][3:] != inputs[3:]:
        shown = state.shown[stack.name] = (inputs, _stack_entry(state, stack, drift))
    return shown[1]


def _stack_entry(state: Any, stack: Any, drift: dict[str, int]) -> dict[str, Any]:
    result = state.stack_results.get(stack.name)
    last = state.last_result
    violations = [to_jsonable(v) for v in result.violations] if result else []
    display = result.state.value if result else None
    if display in ("applied", "unchanged") and drift.get(stack.name):
        display = "drifted"
    return {
        "name": stack.name, "path": stack.path, "depends_on": list(stack.depends_on),
        "state": result.state.value if result else None, "display_state": display or "pending",
        "reason": result.reason if result else "", "blocked_by": list(result.blocked_by) if result else [],
        "healthy": result.healthy if result else None,
        "commit": last.commit.sha if last and last.commit and result else None,
        "changes": len(result.changed) if result else 0,
        "objects": state.stack_objects.get(stack.name) if result else None,
        "drift_count": drift.get(stack.name, 0),
        "violations": violations,
        "last_run": state.stack_runs[stack.name].isoformat() if stack.name in state.stack_runs else None,
        "pinned": last.pins.get(stack.name) if last else None,
    }
