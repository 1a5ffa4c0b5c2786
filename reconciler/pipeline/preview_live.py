"""`reconciler preview --cluster`: the preview checked against live state (reads and dry-runs only).

The prune list becomes what the inventory says each stack owns now and the revision no longer
renders (the cluster may be at another commit than the base). Every object of every stack is
dry-run server-side (the sync after the merge is a full pass): a field that differs from live
although the revision does not change it is drift that the merge's sync overwrites, an object Git
had before the revision but the cluster lacks is created by it, and a dry-run the server rejects is
an error of the preview.
"""

from __future__ import annotations

from reconciler.config import EnvironmentConfig
from reconciler.objects import sort_for_apply
from reconciler.pipeline.context import EngineView
from reconciler.pipeline.ownership import prune_candidates
from reconciler.pipeline.plan import plan_stack
from reconciler.pipeline.prune import NEVER_PRUNED_WITHOUT_OPT_IN, without_unserved
from reconciler.pipeline.rendered import RenderedEnv
from reconciler.results import Action, EnvPreview, FieldChange, StackPreview


_SHOWN = 60


def against_cluster(engine: EngineView, env: EnvironmentConfig, new: RenderedEnv, result: EnvPreview) -> None:
    inventory = engine.load_inventory(create=False)
    owners = new.owners()
    by_stack = {p.stack: p for p in result.stacks}
    declared = {s.name: s for s in env.stacks}
    for stack in sorted(set(inventory.recorded_stacks()) | set(declared)):
        preview = by_stack.get(stack)
        if preview is None:
            preview = by_stack[stack] = StackPreview(stack=stack, status="removed stack")
            result.stacks.append(preview)
        candidates = prune_candidates(inventory.record(stack).objects, owners)
        candidates, gone = without_unserved(engine.cluster, candidates) if candidates else ([], [])
        config = declared.get(stack)
        preview.pruned = [c for c in candidates if c.id.kind not in NEVER_PRUNED_WITHOUT_OPT_IN
                          or (config is not None and config.prune_namespaces)] if env.sync.prune else []
        preview.kept = [f"{c.id} (left in place by the prune rules)" for c in candidates
                        if c not in preview.pruned] + [f"{c.id} (already deleted: its kind is no longer served)"
                                                       for c in gone]
        if preview.pruned and preview.status == "unchanged":
            preview.status = "changed"
    for stack in engine.env.stacks:
        preview = by_stack.get(stack.name)
        if preview is not None and not preview.error and stack.name in new.objects:
            _dry_run(engine, stack.name, new, inventory.record(stack.name).objects, preview)


def _dry_run(engine: EngineView, stack: str, new: RenderedEnv, recorded: dict[str, str], preview: StackPreview) -> None:
    objects = sort_for_apply(engine.owned(o) for o in new.objects[stack])
    planned = plan_stack(engine.cluster_for(stack), objects, engine.selector(stack), recorded, force=False,
                         owner=engine.ownership(stack))
    git_paths = {str(c.id): [f.path for f in c.fields] for c in preview.changed}
    added = {str(c.id) for c in preview.added}
    errors = [f"{entry.where}: {entry.error}" for entry in planned if entry.error]
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        preview.error = "the server refuses: " + "; ".join(errors[:3]) + more
    for entry in planned:
        if entry.error:
            continue
        if str(entry.obj.id) in added or entry.action not in (Action.UPDATE, Action.CREATE):
            continue
        if entry.action is Action.CREATE:
            _note(preview, f"{entry.obj.id}: missing in the cluster, the merge's sync creates it")
            continue
        for field in entry.fields:
            if not _touched(field, git_paths.get(str(entry.obj.id), [])):
                _note(preview, f"{entry.obj.id}: {field.path} is {field.live!r} live, Git has {field.desired!r}")


def _note(preview: StackPreview, line: str) -> None:
    if len(preview.drift_overwritten) < _SHOWN:
        preview.drift_overwritten.append(line)


def _touched(field: FieldChange, git_paths: list[str]) -> bool:
    """The revision changes this field (or a field above or below it)."""
    return any(field.path.startswith(path) or path.startswith(field.path) for path in git_paths)
