"""One pass of `sync` (or `plan`, a dry run): prepare, walk the waves, finish.

Prepare: render the commit (and the commits of pinned stacks), check that no object is in two
stacks, take the environment's writer lease (a real pass only), read the inventory and rebuild the
records a lost inventory took with it. Then `PassRun` walks the waves, and with `autoRollback` a
stack that failed its health gate goes back to its last healthy commit in the same pass, under the
same lease; the lease is given back whatever happens. Failures are data in the
PassResult, never exceptions out of here.
"""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from dataclasses import replace
from typing import Callable

import structlog

from reconciler.errors import ReconcilerError
from reconciler.kube.cluster import Cluster
from reconciler.kube.lease import WriterLease
from reconciler.kube.livecache import WatchKey
from reconciler.pipeline.context import EngineView, PassContext, PassOptions
from reconciler.pipeline.fetchmemo import Moment
from reconciler.pipeline.hashkey import hash_key_secret
from reconciler.pipeline.inventory import SYSTEM_NAMESPACE, Inventory
from reconciler.pipeline.ownership import owner_label_values
from reconciler.pipeline.passrun import PassRun
from reconciler.pipeline.pinning import pin_render, settle_pins
from reconciler.pipeline.pins import Pins
from reconciler.pipeline.progress import Progress, emitter
from reconciler.pipeline.recovery import rebuild_records
from reconciler.pipeline.removed import prune_removed_stacks
from reconciler.pipeline.rendered import RenderedEnv, check_policy_folder
from reconciler.pipeline.rollback import auto_rollback, refuse_blocked_rollback
from reconciler.pipeline.windows import next_opening
from reconciler.results import PassResult, Rollback, StackState, utcnow


log = structlog.get_logger("reconciler.pipeline.engine")


def run_pass(engine: EngineView, stack: str | None, dry_run: bool, progress: Progress | None, run_id: str | None,
             should_stop: Callable[[], bool], rollback: Pins | None = None,
             options: PassOptions | None = None) -> PassResult:
    """One pass. `rollback`: pins to set first; the pass then covers only those stacks (a rollback).
    A real pass holds the engine's write lock (live corrections wait) and gives the writer lease back on
    every way out, an unexpected exception included."""
    run_id = run_id or uuid.uuid4().hex[:12]
    result = PassResult(env=engine.env.name, run_id=run_id, commit=None, dry_run=dry_run)
    lease = None if dry_run else engine.writer_lease()
    with nullcontext() if dry_run else engine.write_lock:
        try:
            return _run(engine, stack, dry_run, progress, result, should_stop, rollback, lease,
                        options or PassOptions())
        finally:
            if lease is not None:
                lease.release()


def _run(engine: EngineView, stack: str | None, dry_run: bool, progress: Progress | None, result: PassResult,
         should_stop: Callable[[], bool], rollback: Pins | None, lease: WriterLease | None,
         options: PassOptions) -> PassResult:
    run_id = result.run_id
    emit = emitter(progress, run_id, engine.env.name)
    try:
        ctx, head, rendered, inventory, pins = _prepare(engine, result, progress, lease, should_stop, rollback,
                                                        options.asked)
        ctx = replace(ctx, options=options)
        env = ctx.env  # the environment file in force at the head this pass applies
        selected = set(rollback.stacks) if rollback else {env.stack(stack).name} if stack else {s.name for s in env.stacks}
    except ReconcilerError as exc:
        result.error, result.finished_at = str(exc), utcnow()
        log.error("pass failed before any stack", env=engine.env.name, run_id=run_id, error=result.error)
        return result
    stop = (lambda: should_stop() or lease.lost()) if lease else should_stop
    walk = PassRun(ctx, rendered, inventory, result, selected, dry_run, emit, stop)
    walk.execute()
    held = [s.stack for s in result.stacks if s.state is StackState.HELD]
    result.held_until = next_opening(env, held) if held and not dry_run else None
    engine.remember(settled=walk.settled)
    if rollback:
        result.rollbacks.append(_rollback_record(rollback, result))
    elif not dry_run and env.sync.auto_rollback and not stop():
        auto_rollback(engine, ctx, head, inventory, result, pins, emit, stop)
    if stack is None and rollback is None and not should_stop():
        prune_removed_stacks(ctx, rendered, inventory, result)
    _write_waiting_records(inventory, result)
    if not dry_run:
        engine.remember(inventory=inventory)
    if lease is not None:
        lease.release()  # before the watches are set up: the next writer need not wait for them
    if engine.live is not None and not dry_run:
        engine.live.select(owner_label_values(env.name, (s.name for s in env.stacks)))
        engine.live.ensure(*watch_views(ctx, rendered))
    result.api_requests = engine.cluster.request_counts()
    result.finished_at = utcnow()
    log.info("pass finished", env=env.name, run_id=run_id, commit=rendered.commit.short, ok=result.ok,
             stacks={s.stack: s.state.value for s in result.stacks}, api_requests=result.total_requests,
             pins=result.pins or None)
    emit(None, None, "done", "pass finished")
    return result


def _write_waiting_records(inventory: Inventory, result: PassResult) -> None:
    """Stack records that waited for a later write (`inventory.RECORD_DELAY_S`) go out before the lease
    is given back; one that cannot be written is said, and the next pass records the stack again."""
    try:
        inventory.flush()
    except ReconcilerError as exc:
        result.notices.append(f"stack records not saved: {exc}")
        log.error("stack records not saved", env=result.env, run_id=result.run_id, error=str(exc))


def watch_views(ctx: PassContext, rendered: RenderedEnv) -> tuple[set[WatchKey], dict[WatchKey, Cluster]]:
    """What the live cache watches, each as the account of a stack writing that kind there (so may list it)."""
    views: dict[WatchKey, Cluster] = {}
    for stack, objects in rendered.objects.items():
        view = ctx.cluster_for(stack)  # one view per stack, not one per object
        for obj in objects:
            views.setdefault(WatchKey(obj.api_version, obj.kind, obj.id.namespace), view)
    return set(views), views


def _prepare(engine: EngineView, result: PassResult, progress: Progress | None, lease: WriterLease | None,
             should_stop: Callable[[], bool], rollback: Pins | None, asked: Moment | None = None
             ) -> tuple[PassContext, RenderedEnv, RenderedEnv, Inventory, Pins]:
    """Render the head, then with pins (`pins.json`, and a rollback's) the pinned stacks at their commits;
    take the writer lease, read the inventory (rebuilding lost records), store changed pins. Raises
    ReconcilerError. Returns the pass's context, the head's render, the render this pass applies, the
    inventory and the pins. `asked`: as of when the head is wanted (a daemon run's latest trigger: the
    passes a push fans out share one look at the remote, `fetchmemo`)."""
    head = engine.render(progress=progress, run_id=result.run_id, discover=True, asked=asked)
    env = head.env
    result.commit, result.env_file = head.commit, env.file
    check_policy_folder(env, head)
    stored = engine.memory.known_pins  # as the last pass left them: no request; checked below under the lease
    pins, rendered = _pinned(engine, head, stored, rollback, result)
    engine.cluster.reset_counts()
    if lease is not None:
        lease.acquire(engine.writer.wait_s, engine.writer.on_wait, should_stop)
    inventory = engine.load_inventory(create=not result.dry_run)
    current = inventory.pins()
    if current.to_json() != stored.to_json():  # set or lifted by another process (or a first pass)
        result.notices.clear()
        pins, rendered = _pinned(engine, head, current, rollback, result)
    if inventory.key_lost:
        result.notices.append(f"the hash key Secret {SYSTEM_NAMESPACE}/{hash_key_secret(env.name)} was missing: the "
                              "inventory's hashes cannot be checked, so a live difference is reported as drift, never "
                              "taken for a Git change, until its stack is applied again")
        log.warning("hash key missing: recorded hashes forgotten", env=env.name)
    if not result.dry_run:
        inventory.save_pins(pins)
        engine.remember(pins=pins)
    result.pins = pins.to_dict()["stacks"]
    ctx = engine.context(env)
    scopes = {s.name: (ctx.cluster_for(s.name), {o.id.namespace for o in rendered.objects.get(s.name, [])
                                                 if o.id.namespace}) for s in env.stacks}
    if rebuild_records(inventory, scopes):
        log.warning("inventory rebuilt from owner labels", env=env.name, objects=inventory.recovered)
    return ctx, head, rendered, inventory, pins


def _pinned(engine: EngineView, head: RenderedEnv, stored: Pins, rollback: Pins | None,
            result: PassResult) -> tuple[Pins, RenderedEnv]:
    pins, notices = settle_pins(head.env, stored, head.commit, rollback)
    result.notices.extend(notices)
    rendered = pin_render(head.env, head, pins, engine.rendered_at)
    if rollback:
        refuse_blocked_rollback(rendered, rollback)
    rendered.check_unique(head.env.file)
    return pins, rendered


def _rollback_record(rollback: Pins, result: PassResult) -> Rollback:
    first = next(iter(rollback.stacks.values()))
    return Rollback(stacks=sorted(rollback.stacks), to_commit=first.revision, from_commit=first.failed_commit,
                    automatic=False, ok=result.ok)
