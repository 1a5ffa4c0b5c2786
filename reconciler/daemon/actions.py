"""What a queued run does: a sync, a rollback (a pass of the rolled-back stacks with their pins set), an unpin,
or a read (a plan or a preview, for the status page)."""

from __future__ import annotations

from typing import Any, Callable

from reconciler.daemon.runs import Run, RunState, summarize_pass
from reconciler.errors import ReconcilerError
from reconciler.logs import get_logger, redact_text
from reconciler.pipeline.context import PassOptions
from reconciler.pipeline.object_view import unified_diff
from reconciler.results import PassResult, to_jsonable, utcnow

log = get_logger("reconciler.daemon")


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
                          manual=any(source.rpartition(":")[2].startswith("manual") for source in run.sources),
                          asked=run.asked)
    return engine.sync(stack=run.stack, progress=progress, run_id=run.id, should_stop=should_stop, options=options)


def run_read(engine: Any, run: Run, progress: Callable[[Any], None]) -> Any:
    """A plan (what the next pass would apply, dry-run against the cluster) or a preview (what merging a
    branch does), as JSON with a unified diff per changed object. Nothing is written or recorded."""
    if run.action == "plan":
        result = engine.plan(stack=run.stack, progress=progress, run_id=run.id)
        report = summarize_pass(result)
        for stack, data in zip(result.stacks, report["stacks"]):
            for change, item in zip(stack.changes, data["changes"]):
                item["diff"] = unified_diff(str(change.id), change.fields, "live", "git", desired_first=False) \
                    if change.fields else ""
            data["changes"] = [item for item in data["changes"] if item["action"] != "unchanged"]
        return report
    from reconciler.pipeline.preview import preview

    found = preview(engine, run.options["revision"], run.options.get("base"), cluster=run.options.get("cluster", True))
    report = to_jsonable(found)
    for stack, data in zip(found.stacks, report["stacks"]):
        for change, item in zip(stack.changed, data["changed"]):
            item["diff"] = unified_diff(str(change.id), change.fields, "base", "branch", desired_first=False)
    report["exit_code"] = found.exit_code
    return report


def run_read_safely(engine: Any, run: Run, progress: Callable[[Any], None]) -> None:
    """Run a read and fill its record in: a refused revision or a failed render is the read's answer, not
    the daemon's problem (it never touches the environment's state, alerts or backoff)."""
    run.state, run.started_at = RunState.RUNNING, utcnow()
    try:
        run.report = run_read(engine, run, progress)
        run.state, run.message = RunState.SUCCEEDED, f"{run.action} ready"
    except ReconcilerError as exc:
        run.state, run.message = RunState.FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 - the last resort: the worker thread must live on
        log.exception("read crashed", action=run.action)
        run.state, run.message = RunState.FAILED, redact_text(f"{type(exc).__name__}: {exc}")
    run.finished_at = utcnow()


def run_write_safely(engine: Any, run: Run, progress: Callable[[Any], None],
                     should_stop: Callable[[], bool]) -> PassResult:
    """`run_action`, its failures returned as the result's error: a ReconcilerError (a rollback without a
    target, an unpin of what is not pinned) as it says, any other exception logged and redacted (the engine
    reports failures as data; this is the last resort, and the worker thread must live on)."""
    try:
        result = run_action(engine, run, progress, should_stop)
    except ReconcilerError as exc:
        result = PassResult(env=run.env, run_id=run.id, commit=None, dry_run=False, error=str(exc))
    except Exception as exc:  # noqa: BLE001
        log.exception("pass crashed")
        result = PassResult(env=run.env, run_id=run.id, commit=None, dry_run=False,
                            error=redact_text(f"{type(exc).__name__}: {exc}"))
    if result.finished_at is None:
        result.finished_at = utcnow()
    return result
