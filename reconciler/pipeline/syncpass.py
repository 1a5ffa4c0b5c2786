"""One pass of `sync` (or `plan`, a dry run): prepare, walk the waves, finish.

Prepare: render the commit, check that no object is in two stacks, take the environment's writer
lease (a real pass only), read the inventory and rebuild the records a lost inventory took with it.
Then `PassRun` walks the waves; the lease is given back whatever happens. Failures are data in the
PassResult, never exceptions out of here.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Callable

import structlog

from reconciler.errors import ReconcilerError
from reconciler.kube.lease import WriterLease
from reconciler.pipeline.inventory import Inventory
from reconciler.pipeline.passrun import PassRun
from reconciler.pipeline.progress import Progress, emitter
from reconciler.pipeline.removed import prune_removed_stacks
from reconciler.pipeline.rendered import RenderedEnv
from reconciler.results import PassResult, utcnow

if TYPE_CHECKING:
    from reconciler.pipeline.engine import Engine

log = structlog.get_logger("reconciler.pipeline.engine")


def run_pass(engine: "Engine", stack: str | None, dry_run: bool, progress: Progress | None, run_id: str | None,
             should_stop: Callable[[], bool]) -> PassResult:
    env = engine.env
    run_id = run_id or uuid.uuid4().hex[:12]
    result = PassResult(env=env.name, run_id=run_id, commit=None, dry_run=dry_run)
    selected = {env.stack(stack).name} if stack else {s.name for s in env.stacks}
    emit = emitter(progress, run_id, env.name)
    lease = None if dry_run else engine.writer_lease()
    try:
        rendered, inventory = _prepare(engine, result, progress, lease, should_stop)
    except ReconcilerError as exc:
        if lease is not None:
            lease.release()
        result.error, result.finished_at = str(exc), utcnow()
        log.error("pass failed before any stack", env=env.name, run_id=run_id, error=result.error)
        return result
    try:
        PassRun(engine, rendered, inventory, result, selected, dry_run, emit,
                (lambda: should_stop() or lease.lost()) if lease else should_stop).execute()
        if stack is None and not should_stop():
            prune_removed_stacks(engine, rendered, inventory, result)
    finally:
        if lease is not None:
            lease.release()
    if engine.live is not None and not dry_run:
        engine.live.ensure(*engine.watch_views(rendered))
    result.api_requests = engine.cluster.request_counts()
    result.finished_at = utcnow()
    log.info("pass finished", env=env.name, run_id=run_id, commit=rendered.commit.short, ok=result.ok,
             stacks={s.stack: s.state.value for s in result.stacks}, api_requests=result.total_requests)
    emit(None, None, "done", "pass finished")
    return result


def _prepare(engine: "Engine", result: PassResult, progress: Progress | None, lease: WriterLease | None,
             should_stop: Callable[[], bool]) -> tuple[RenderedEnv, Inventory]:
    """Render, take the writer lease, read the inventory (rebuilding lost records). Raises ReconcilerError."""
    rendered = engine.render(progress=progress, run_id=result.run_id)
    result.commit = rendered.commit
    rendered.check_unique(engine.env.file)
    engine.cluster.reset_counts()
    if lease is not None:
        lease.acquire(engine.writer.wait_s, engine.writer.on_wait, should_stop)
    inventory = engine.load_inventory(create=not result.dry_run)
    scopes = {s.name: (engine.cluster_for(s.name), {o.id.namespace for o in rendered.objects.get(s.name, [])
                                                    if o.id.namespace}) for s in engine.env.stacks}
    if inventory.recover(scopes):
        log.warning("inventory rebuilt from owner labels", env=engine.env.name, objects=inventory.recovered)
    return rendered, inventory
