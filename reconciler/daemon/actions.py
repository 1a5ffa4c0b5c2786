"""What a queued run does: a sync, a rollback (a pass of the rolled-back stacks with their pins set), or an unpin."""

from __future__ import annotations

from typing import Any, Callable

from reconciler.daemon.runs import Run
from reconciler.pipeline.context import PassOptions
from reconciler.results import PassResult, utcnow


def run_action(engine: Any, run: Run, progress: Callable[[Any], None], should_stop: Callable[[], bool]) -> PassResult:
    """Run `run` on `engine`. ReconcilerError (no rollback target, nothing pinned) propagates to the caller."""
    if run.action == "rollback":
        from reconciler.pipeline.rollback_ops import rollback

        return rollback(engine, run.stack, run.options.get("to"), run.options.get("dependents", True),
                        run.options.get("by", "api"), progress, run.id, should_stop)
    if run.action in ("suspend", "resume"):
        from reconciler.pipeline.suspend_ops import resume, suspend

        if run.action == "suspend":
            what = suspend(engine, run.stack, run.options.get("by", "api"), run.options.get("reason", "")).note(
                run.stack or "")
        else:
            what = "resumed " + ", ".join(resume(engine, run.stack))
        result = PassResult(env=run.env, run_id=run.id, commit=None, dry_run=False, finished_at=utcnow())
        result.notices.append(what)
        return result
    if run.action == "unpin":
        from reconciler.pipeline.rollback_ops import unpin

        lifted = unpin(engine, run.stack)
        result = PassResult(env=run.env, run_id=run.id, commit=None, dry_run=False, finished_at=utcnow())
        result.notices.append(f"unpinned: {', '.join(lifted)}" if lifted else "nothing was pinned")
        return result
    options = PassOptions(allow_mass_prune=bool(run.options.get("allow_mass_prune")),
                          manual=any(source.rpartition(":")[2].startswith("manual") for source in run.sources))
    return engine.sync(stack=run.stack, progress=progress, run_id=run.id, should_stop=should_stop, options=options)
