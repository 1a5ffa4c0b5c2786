"""Rollback: which commit a stack goes back to, and the pins that hold it there.

`rollback_pins` chooses the target from the stacks' histories (the last commit on which the stack and,
by default, its dependents were healthy, or the `--to` revision if the history has it) and returns
the pins a rollback pass applies through the ordinary pipeline (policy, plan, health gates, prune).
`auto_rollback_pins` does the same for a stack that failed its health gate in this pass after a Git
change, once per failing commit.
"""

from __future__ import annotations

from typing import Callable

from reconciler import graph
from reconciler.errors import ReconcilerError
from reconciler.pipeline.context import EngineView, PassContext
from reconciler.pipeline.diff import object_hash
from reconciler.pipeline.history import (RollbackError, in_history, last_healthy_commit, mark_rolled_back,
                                         was_rolled_back)
from reconciler.pipeline.inventory import Inventory
from reconciler.pipeline.passrun import PassRun
from reconciler.pipeline.pinning import pin_notices, pin_render
from reconciler.pipeline.pins import Pin, Pins
from reconciler.pipeline.progress import Emit
from reconciler.pipeline.rendered import RenderedEnv
from reconciler.pipeline.source import resolve_remote
from reconciler.results import PassResult, Rollback, StackState, utcnow


AUTO = "autoRollback"


def rollback_stacks(engine: EngineView, stack: str | None, dependents: bool) -> list[str]:
    """The stack and (by default) every stack that depends on it; without a stack, all of them."""
    if stack is None:
        return [s.name for s in engine.env.stacks]
    engine.env.stack(stack)  # an unknown stack is a ConfigError naming the known ones
    return [stack] + (sorted(graph.dependents(engine.env.dependencies, stack)) if dependents else [])


def rollback_pins(engine: EngineView, inventory: Inventory, stack: str | None, to: str | None, dependents: bool,
                  by: str) -> Pins:
    """The pins a rollback of `stack` (all stacks if None) sets. RollbackError when there is no target."""
    stacks = rollback_stacks(engine, stack, dependents)
    histories = {s: history for s in stacks if (history := inventory.record(s).history)}
    anchor = stack or next((s for wave in graph.waves(engine.env.dependencies) for s in wave if s in histories), None)
    if anchor is None or anchor not in histories:
        raise RollbackError(f"stack {anchor or stacks[0]!r} of {engine.env.name!r} has no history yet: nothing to "
                            "roll back to", fix="sync it first; every pass that applies a stack records its commit")
    if to:
        sha = resolve_remote(engine.source, to).sha
        if in_history(histories[anchor], sha) is None:
            known = ", ".join(e["commit"][:10] for e in histories[anchor])
            raise RollbackError(f"revision {to!r} ({sha[:10]}) is not among the last {len(histories[anchor])} "
                                f"commits stack {anchor!r} applied, so it was never healthy here as far as the "
                                "reconciler knows", fix=f"give one of: {known}")
    else:
        sha = last_healthy_commit(histories, anchor)
    now = utcnow().isoformat()
    current = histories[anchor][0].get("commit")
    pin = Pin(revision=sha, at=now, by=by, reason=f"rollback of {anchor}", failed_commit=current)
    return Pins(stacks={s: pin for s in stacks})


def auto_rollback_pins(engine: EngineView, inventory: Inventory, result: PassResult,
                       rendered: RenderedEnv) -> tuple[Pins, list[str]]:
    """Pins for the stacks that failed their health gate in `result` at a new commit and were never
    rolled back from it; with the notices saying why a failing stack was not rolled back."""
    pins, notices = Pins(), []
    for stack in result.stacks:
        if stack.state is not StackState.FAILED or stack.healthy is not False or stack.stack in pins.stacks:
            continue
        record = inventory.record(stack.stack)
        if not _git_changed(engine, rendered, record.objects, stack.stack):
            continue  # unhealthy without a Git change (a node lost, a drift corrected): no commit to blame
        history = record.history
        failing = history[0].get("commit") if history else None
        if failing is None or was_rolled_back(history, failing) or history[0].get("pinned"):
            continue
        try:
            found = rollback_pins(engine, inventory, stack.stack, None, True, AUTO)
        except RollbackError as exc:
            notices.append(f"autoRollback of {stack.stack} not possible: {exc.message}")
            continue
        for name, pin in found.stacks.items():
            pins.stacks[name] = Pin(pin.revision, pin.at, AUTO, f"{stack.stack} failed its health gate at "
                                    f"{failing[:10]}: {stack.reason[:160]}", failing)
    return pins, notices


def _git_changed(engine: EngineView, rendered: RenderedEnv, recorded: dict[str, str], stack: str) -> bool:
    """Git wants something else than the stack's last successful pass applied. A failed pass keeps the
    record's hashes, so this holds on the next pass too when a process died before the health gate
    failed (the objects were applied, the failure never recorded)."""
    return any(recorded.get(str(o.id)) != object_hash(engine.owned(o), engine.hash_key)
               for o in rendered.objects.get(stack, []))


def refuse_blocked_rollback(rendered: RenderedEnv, rollback: Pins) -> None:
    """A rollback whose target today's policies block is refused before anything is written."""
    report = rendered.policy_report
    blocking = [v for v in (report.blocking if report else []) if v.stack in rollback.stacks]
    if blocking:
        target = next(iter(rollback.stacks.values())).revision[:10]
        raise RollbackError(
            f"rollback of {', '.join(sorted(rollback.stacks))} to {target} refused: {len(blocking)} enforced policy "
            "violation(s) under today's policies: " + "; ".join(f"{v.rule} on {v.object}" for v in blocking[:3]),
            fix="roll back to another commit with --to, or fix forward in Git")


def auto_rollback(engine: EngineView, ctx: PassContext, head: RenderedEnv, inventory: Inventory, result: PassResult,
                  pins: Pins, emit: Emit, should_stop: Callable[[], bool]) -> None:
    """`sync.autoRollback`: stacks that failed their health gate at a new commit go back to their last
    healthy commit (with their dependents) in this pass, and are pinned there. Their results in
    `result` become the rollback's; `result.rollbacks` names both commits."""
    new, notices = auto_rollback_pins(engine, inventory, result, head)
    result.notices.extend(notices)
    if not new:
        return
    merged = Pins(head=head.commit.sha, stacks={**pins.stacks, **new.stacks})
    rendered = pin_render(ctx.env, head, merged, engine.rendered_at)
    try:
        refuse_blocked_rollback(rendered, new)
        rendered.check_unique(ctx.env.file)
    except ReconcilerError as exc:
        result.notices.append(f"autoRollback not done: {exc}")
        return
    by_failed_commit = _by_failed_commit(new)
    for failing, (target, stacks) in by_failed_commit.items():
        for name in stacks:
            record = inventory.record(name)
            record.history = mark_rolled_back(record.history, failing, target)
            inventory.save_record(name, record)
    inventory.save_pins(merged)
    engine.remember(pins=merged)
    again = PassResult(env=result.env, run_id=result.run_id, commit=head.commit, dry_run=False)
    walk = PassRun(ctx, rendered, inventory, again, set(new.stacks), False, emit, should_stop)
    walk.execute()
    engine.remember(settled=walk.settled)
    replaced = {s.stack: s for s in again.stacks}
    result.stacks = [replaced.get(s.stack, s) for s in result.stacks]
    result.pins = merged.to_dict()["stacks"]
    stale = set(pin_notices(ctx.env, pins, head.commit))
    result.notices = [n for n in result.notices if n not in stale] + pin_notices(ctx.env, merged, head.commit)
    for failing, (target, stacks) in by_failed_commit.items():
        ok = all(replaced[s].state.value in ("applied", "unchanged") for s in stacks if s in replaced)
        result.rollbacks.append(Rollback(stacks=sorted(stacks), to_commit=target, from_commit=failing,
                                         automatic=True, ok=ok))


def _by_failed_commit(pins: Pins) -> dict[str, tuple[str, list[str]]]:
    out: dict[str, tuple[str, list[str]]] = {}
    for stack, pin in sorted(pins.stacks.items()):
        out.setdefault(pin.failed_commit or "", (pin.revision, []))[1].append(stack)
    return out
