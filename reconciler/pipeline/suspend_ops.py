"""`reconciler suspend` / `resume` (and the daemon's API for them): change the environment's suspensions
under its writer lease, so no pass is between reading and writing them; the next pass honours them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from reconciler.errors import ConfigError
from reconciler.pipeline.context import EngineView
from reconciler.pipeline.inventory import Inventory, now_iso
from reconciler.pipeline.suspension import ENV, Suspension, Suspensions


@contextmanager
def writer_held(engine: EngineView) -> Iterator[None]:
    """The environment's writer lease, held for the body (a pass in progress is waited for, as configured)."""
    lease = engine.writer_lease()
    lease.acquire(engine.writer.wait_s, engine.writer.on_wait, lambda: False)
    try:
        yield
    finally:
        lease.release()


def suspend(engine: EngineView, stack: str | None, by: str, reason: str) -> Suspensions:
    """Suspend the environment (stack None) or one stack; who and why are required."""
    if not reason.strip() or not by.strip():
        raise ConfigError("a suspension names who and why", fix="pass --reason (and --by, default user@host)")
    if stack is not None:
        engine.env.stack(stack)  # an unknown stack is a ConfigError naming the known ones
    with writer_held(engine):
        inventory = Inventory(engine.cluster, engine.env.name)
        inventory.load(create=True)
        suspensions = inventory.suspensions()
        suspensions.entries[stack or ENV] = Suspension(by=by.strip(), reason=reason.strip(), at=now_iso())
        inventory.save_suspensions(suspensions)
        return suspensions


def resume(engine: EngineView, stack: str | None) -> list[str]:
    """Lift the suspension of the environment (stack None) or of one stack; returns what was lifted
    ("environment" or stack names). Resuming what is not suspended is an error naming what is."""
    with writer_held(engine):
        inventory = Inventory(engine.cluster, engine.env.name)
        inventory.load(create=False)
        suspensions = inventory.suspensions()
        key = stack or ENV
        if key not in suspensions.entries:
            held = ["environment" if k == ENV else k for k in sorted(suspensions.entries)]
            what = f"stack {stack!r} of {engine.env.name!r}" if stack else f"environment {engine.env.name!r}"
            raise ConfigError(f"{what} is not suspended", fix=f"resume what is suspended: {', '.join(held)}" if held
                              else "nothing is suspended; nothing to resume")
        suspensions.entries.pop(key)
        inventory.save_suspensions(suspensions)
        return ["environment" if key == ENV else key]
