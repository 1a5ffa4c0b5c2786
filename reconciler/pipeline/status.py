"""`reconciler status` and the daemon's history API: what the inventory says about each stack, read now."""

from __future__ import annotations

from datetime import datetime

from reconciler.pipeline.context import EngineView
from reconciler.pipeline.inventory import Inventory
from reconciler.pipeline.windows import describe
from reconciler.results import EnvStatus, StackStatus, to_jsonable


def stack_statuses(engine: EngineView) -> EnvStatus:
    """Per stack: last commit, result, health, drift, pin and history, read from the inventory now."""
    inventory = Inventory(engine.cluster, engine.env.name)
    inventory.load(create=False)
    pins = inventory.pins()
    suspensions = inventory.suspensions()
    stacks = []
    for stack in engine.env.stacks:
        record = inventory.record(stack.name)
        last = datetime.fromisoformat(record.last_run) if record.last_run else None
        pin = pins.stacks.get(stack.name)
        newest = record.history[0].get("commit") if record.history else None
        failed = newest if record.state == "failed" and newest != record.commit else None
        stacks.append(StackStatus(stack.name, record.commit, record.state, record.reason, record.healthy,
                                  record.drift_count, record.violations, last, history=record.history,
                                  pinned=to_jsonable(pin) if pin else None, failed_commit=failed,
                                  suspended=suspensions.note(stack.name)))
    return EnvStatus(engine.env.name, stacks, pinned_head=pins.head if pins else None, env_file=engine.env.file,
                     suspended=suspensions.note("") if suspensions.of("") else "", windows=describe(engine.env))
