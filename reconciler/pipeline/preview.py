"""`reconciler preview`: what merging a revision does to an environment, before anyone merges it.

Both commits are rendered from the Git mirror (exported trees; the working tree is never checked
out or touched), with the environment file as each commit has it when the file lives in the
repository (so a branch that removes a stack or an overlay shows it). Policy runs on both renders:
violations are new, fixed or still there. Per stack: objects added, changed (field paths), pruned,
handed over from another stack; and the blast radius: which stacks the merge re-applies and which
dependents wait for them. Renders of unchanged stacks come from the render cache, so a preview of
an environment costs about the stacks the revision changed.

With a cluster (`--cluster`), the prune list comes from the inventory (what the environment owns
now, not what the base commit rendered) and every stack is dry-run against live state (see
preview_live.py).
"""

from __future__ import annotations

import git

from reconciler import graph
from reconciler.config import EnvironmentConfig
from reconciler.errors import ReconcilerError
from reconciler.objects import K8sObject
from reconciler.pipeline.context import EngineView
from reconciler.pipeline.diff import manifest_changes
from reconciler.pipeline.envfile import environment_at, followed_path
from reconciler.pipeline.progress import emitter
from reconciler.pipeline.prune import NEVER_PRUNED_WITHOUT_OPT_IN, PRUNE_ANNOTATION
from reconciler.pipeline.rendered import RenderedEnv, render_environment
from reconciler.pipeline.source import resolve_remote
from reconciler.results import Action, CommitInfo, EnvPreview, ObjectChange, StackPreview


def preview(engine: EngineView, revision: str, base: str | None = None, cluster: bool = False) -> EnvPreview:
    """The environment at `revision` compared with `base` (default: where `revision` branched from the
    environment's branch). ReconcilerError for an unknown revision or an environment file missing at it."""
    new_commit = resolve_remote(engine.source, revision)
    base_commit = resolve_remote(engine.source, base) if base else default_base(engine, new_commit)
    new_env = env_at(engine, new_commit, required=True)
    base_env = env_at(engine, base_commit, required=False)
    new = render_at(engine, new_env, new_commit)
    old = render_at(engine, base_env, base_commit) if base_env is not None else None
    result = EnvPreview(env=engine.env.name, base=base_commit, revision=new_commit, cluster=cluster)
    result.stacks = compare(base_env, old, new_env, new)
    if cluster:
        from reconciler.pipeline.preview_live import against_cluster

        against_cluster(engine, new_env, new, result)
    return result


def default_base(engine: EngineView, new: CommitInfo) -> CommitInfo:
    """Where `new` branched from the environment's branch (`<branch>`, else `origin/<branch>`)."""
    branch = engine.env.source.branch
    for name in (branch, f"origin/{branch}"):
        try:
            head = resolve_remote(engine.source, name)
        except ReconcilerError:
            continue
        repo = git.Repo(engine.source.mirror_dir)
        found = repo.merge_base(head.sha, new.sha)
        return resolve_remote(engine.source, found[0].hexsha) if found else head
    raise ReconcilerError(f"no branch {branch!r} (or origin/{branch}) to compare {new.short} with",
                          fix="give --base REV (the commit the pull request would merge into)")


def env_at(engine: EngineView, commit: CommitInfo, required: bool) -> EnvironmentConfig | None:
    """The environment in force at `commit` (pipeline.envfile), as every pass reads it; the file given
    for a repository of manifests only. None when the commit has no such file (a new environment)."""
    local = engine.local_env
    relative = followed_path(local)
    if relative is None:
        return local
    tree = engine.source.export(commit.sha)
    if not (tree / relative).is_file():
        if required:
            raise ReconcilerError(f"{relative} does not exist at {commit.short}: the revision removes environment "
                                  f"{local.name!r}", fix="preview an environment the revision keeps")
        return None
    return environment_at(local, tree, commit)


def render_at(engine: EngineView, env: EnvironmentConfig, commit: CommitInfo) -> RenderedEnv:
    tree = engine.source.export(commit.sha)
    return render_environment(env, commit, tree, emitter(None, "", env.name), engine.render_cache,
                              lambda path, sha=commit.sha: engine.source.tree_hash(sha, path),
                              workers=engine.kustomize_workers)


def compare(base_env: EnvironmentConfig | None, old: RenderedEnv | None, new_env: EnvironmentConfig,
            new: RenderedEnv) -> list[StackPreview]:
    """Per stack of either commit, in the new environment's order then the removed ones."""
    old_objects = {o.id: (stack, o) for stack, objs in (old.objects if old else {}).items() for o in objs}
    new_owner = new.owners()
    old_stacks = [s.name for s in base_env.stacks] if base_env is not None else []
    new_stacks = [s.name for s in new_env.stacks]
    previews = []
    for name in new_stacks + [s for s in old_stacks if s not in new_stacks]:
        preview = StackPreview(stack=name, status="unchanged")
        declared = name in new_stacks
        if not declared:
            preview.status = "removed stack"
        elif name not in old_stacks:
            preview.status = "new stack"
        preview.error = new.errors.get(name, "")
        for obj in new.objects.get(name, []):
            _compare_object(preview, obj, old_objects.get(obj.id))
        for oid, (stack, obj) in sorted(old_objects.items(), key=lambda item: str(item[0])):
            if stack == name and oid not in new_owner:
                _gone(preview, obj, new_env, declared)
        if preview.error:
            preview.status = "render error"
        elif preview.status == "unchanged" and preview.reapplied:
            preview.status = "changed"
        previews.append(preview)
    _policy_delta(previews, old, new)
    _blast_radius(previews, new_env)
    return previews


def _compare_object(preview: StackPreview, obj: K8sObject, before: tuple[str, K8sObject] | None) -> None:
    if before is None:
        preview.added.append(ObjectChange(obj.id, Action.CREATE, source_file=obj.source_file))
        return
    stack, old = before
    if stack != preview.stack:
        preview.moved_in.append(f"{obj.id} from {stack}")
    fields = manifest_changes(old.manifest, obj.manifest)
    if fields:
        preview.changed.append(ObjectChange(obj.id, Action.UPDATE, fields, obj.source_file))


def _gone(preview: StackPreview, obj: K8sObject, env: EnvironmentConfig, declared: bool) -> None:
    """An object no stack renders any more: pruned, or left in place and why (the rules of prune.py)."""
    stack = next((s for s in env.stacks if s.name == preview.stack), None)
    annotations = (obj.manifest.get("metadata") or {}).get("annotations") or {}
    if not env.sync.prune:
        preview.kept.append(f"{obj.id} (sync.prune is off)")
    elif obj.id.kind in NEVER_PRUNED_WITHOUT_OPT_IN and (not declared or stack is None or not stack.prune_namespaces):
        preview.kept.append(f"{obj.id} ({obj.id.kind}s are pruned only with pruneNamespaces on a declared stack)")
    elif annotations.get(PRUNE_ANNOTATION) == "disabled":
        preview.kept.append(f"{obj.id} (annotated {PRUNE_ANNOTATION}: disabled)")
    else:
        preview.pruned.append(ObjectChange(obj.id, Action.PRUNE, source_file=obj.source_file))


def _policy_delta(previews: list[StackPreview], old: RenderedEnv | None, new: RenderedEnv) -> None:
    """New, fixed and still-present violations per stack, a violation being a rule on an object."""
    def keyed(rendered: RenderedEnv | None) -> dict[tuple[str, str, str], object]:
        report = rendered.policy_report if rendered is not None else None
        return {(v.stack, v.rule, v.object): v for v in (report.violations if report else [])}

    before, after = keyed(old), keyed(new)
    by_stack = {p.stack: p for p in previews}
    for key, violation in after.items():
        target = by_stack.get(key[0])
        if target is not None:
            (target.still_violations if key in before else target.new_violations).append(violation)
    for key, violation in before.items():
        if key not in after and key[0] in by_stack:
            by_stack[key[0]].fixed_violations.append(violation)


def _blast_radius(previews: list[StackPreview], env: EnvironmentConfig) -> None:
    """Each stack's re-applied dependencies (direct or not): a sync of the merge waits for them first."""
    reapplied = {p.stack for p in previews if p.reapplied}
    for preview in previews:
        if any(s.name == preview.stack for s in env.stacks):
            preview.waits_on = sorted(s for s in reapplied if preview.stack in graph.dependents(env.dependencies, s))

