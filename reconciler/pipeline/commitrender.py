"""One commit of an environment rendered for the engine: fetched (unless given), its signature verified
where the environment asks, its tree exported, the environment file in force at it read, every stack
rendered. Apart from `engine.Engine`, which only wires the pipeline; typed against `EngineView`, so no
stage imports the engine."""

from __future__ import annotations

from pathlib import Path

from reconciler.pipeline.context import EngineView
from reconciler.pipeline.decrypt import decryptor_for
from reconciler.pipeline.envfile import environment_at
from reconciler.pipeline.fetchmemo import Moment
from reconciler.pipeline.progress import Progress, emitter
from reconciler.pipeline.rendered import RenderedEnv, render_environment
from reconciler.pipeline.scope import discovered_scope
from reconciler.pipeline.signatures import keys_folder, verify_commit
from reconciler.results import CommitInfo


def render_commit(engine: EngineView, keys_dir: Path, commit: CommitInfo | None, progress: Progress | None,
                  run_id: str, revision: str | None, discover: bool, asked: Moment | None) -> RenderedEnv:
    """`Engine.render`: the branch head when neither `commit` nor `revision` is given (fetched as of `asked`,
    verified; its environment file becomes the engine's), else that commit or revision. `discover`: the
    scope of kinds neither built in nor defined by a rendered CRD comes from API discovery. `keys_dir`:
    where keys the verification reads from the cluster are kept (`signatures.keys_folder`)."""
    emit = emitter(progress, run_id, engine.env.name)
    head = commit is None and revision is None
    if commit is None:
        emit(None, None, "fetch", f"fetching {engine.env.source.branch}")
        commit = engine.source.fetch(asked)
        if revision:
            commit = engine.source.resolve(revision)
        elif engine.env.source.verify is not None:
            keys = keys_folder(engine.env.source.verify.keys, engine.local_env.file, lambda: engine.cluster, keys_dir)
            verify_commit(engine.source.mirror_dir, commit.sha, keys, commit.author)
    tree = engine.source.export(commit.sha)
    env = environment_at(engine.local_env, tree, commit)
    if head:
        engine.remember(env=env)
    return render_environment(env, commit, tree, emit, engine.render_cache,
                              lambda p, sha=commit.sha: engine.source.tree_hash(sha, p),
                              discovered_scope(engine.cluster) if discover else None,
                              decryptor_for(env, engine.local_env.file, lambda: engine.cluster),
                              engine.kustomize_workers)
