"""`reconciler rollback` and `reconciler unpin` (and the daemon's API for them) as pipeline operations.

A rollback is an ordinary pass of the rolled-back stacks with their pins set first (syncpass), so it
goes through policy, plan, health gates and prune like any sync; unpin lifts pins under the writer
lease, so no pass reads the pins while they change.
"""

from __future__ import annotations

from typing import Callable

from reconciler.pipeline.context import EngineView
from reconciler.pipeline.history import RollbackError
from reconciler.pipeline.inventory import Inventory
from reconciler.pipeline.progress import Progress
from reconciler.pipeline.rollback import rollback_pins
from reconciler.pipeline.suspend_ops import writer_held
from reconciler.pipeline.syncpass import run_pass
from reconciler.results import PassResult


def rollback(engine: EngineView, stack: str | None = None, to: str | None = None, dependents: bool = True,
             by: str = "cli", progress: Progress | None = None, run_id: str | None = None,
             should_stop: Callable[[], bool] | None = None) -> PassResult:
    """Take `stack` (and its dependents; every stack if None) back to its last healthy commit, or `to`,
    through a pass of those stacks, and pin them there. A target that cannot be found is a RollbackError."""
    engine.source.fetch()
    inventory = Inventory(engine.cluster, engine.env.name)
    inventory.load(create=False)
    pins = rollback_pins(engine, inventory, stack, to, dependents, by)
    return run_pass(engine, None, False, progress, run_id, should_stop or (lambda: False), rollback=pins)


def unpin(engine: EngineView, stack: str | None = None) -> list[str]:
    """Lift the pins (of one stack, or all), under the writer lease so no pass is between reading and
    writing them; the next pass applies the branch head. Returns the stacks unpinned."""
    with writer_held(engine):
        inventory = Inventory(engine.cluster, engine.env.name)
        inventory.load(create=False)
        pins = inventory.pins()
        lifted = [s for s in pins.stacks if stack is None or s == stack]
        if stack is not None and not lifted:
            raise RollbackError(f"stack {stack!r} of {engine.env.name!r} is not pinned",
                                fix="pinned: " + (", ".join(sorted(pins.stacks)) or "nothing"))
        for name in lifted:
            pins.stacks.pop(name)
        if lifted:
            inventory.save_pins(pins)
        return sorted(lifted)
