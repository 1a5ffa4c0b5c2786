"""Render and policy: everything a pass knows before it touches the cluster.

Every stack of the environment is rendered (a failed render is recorded per stack, not raised), then
policy runs on the whole environment at once. The result also answers the questions that need the
whole environment: which stack renders each object, and whether one object is rendered twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable

from reconciler.config import EnvironmentConfig
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.objects import K8sObject, ObjectId, parse_reusing
from reconciler.parallel import map_threads
from reconciler.pipeline.decrypt import Decryptor
from reconciler.pipeline.helm_charts import check_vendored
from reconciler.pipeline.kustomize_workers import RENDER_PARALLEL_WORKERS, KustomizeWorkers
from reconciler.pipeline.progress import Emit
from reconciler.pipeline.render import RenderCache, Rendered, build_stacks, cached_render
from reconciler.pipeline.scope import Scope, scope_lookup, scoped_objects
from reconciler.results import CommitInfo


@dataclass
class RenderedEnv:
    """The rendered objects of every stack at one commit, render errors, and the policy report."""

    commit: CommitInfo
    tree: Path
    objects: dict[str, list[K8sObject]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    policy_report: object | None = None
    digests: dict[str, str] = field(default_factory=dict)  # stack -> digest of its rendered text
    pinned: dict[str, CommitInfo] = field(default_factory=dict)  # stack -> the pinned commit it renders instead
    env: EnvironmentConfig | None = None  # the environment file in force at this commit

    def commit_of(self, stack: str) -> CommitInfo:
        """The commit a stack's objects come from: its pin, else the pass's commit."""
        return self.pinned.get(stack, self.commit)

    def owners(self) -> dict[ObjectId, str]:
        """Which stack renders each object: prune and ownership hand-offs look at the whole environment."""
        return {obj.id: stack for stack, objects in self.objects.items() for obj in objects}

    def check_unique(self, env_file: str) -> None:
        """The same object in two stacks is a configuration error, found before anything is applied."""
        seen: dict[ObjectId, K8sObject] = {}
        for objects in self.objects.values():
            for obj in objects:
                first = seen.setdefault(obj.id, obj)
                if first is not obj:
                    raise ConfigError(
                        f"{env_file}: {obj.id} is rendered by stack {first.stack!r} ({first.source_file or '?'}) "
                        f"and by stack {obj.stack!r} ({obj.source_file or '?'})",
                        fix="keep the object in one stack; the other can dependsOn it")


def render_environment(env: EnvironmentConfig, commit: CommitInfo, tree: Path, emit: Emit,
                       cache: RenderCache | None, object_id: Callable[[str], str | None] | None,
                       discovered: Scope | None = None, decryptor: Decryptor | None = None,
                       workers: KustomizeWorkers | None = None) -> RenderedEnv:
    """Render every stack of `env` from `tree` (the commit's files), then evaluate policy. Cache lookups go
    one stack at a time (they read the Git object database); the kustomize builds of misses in parallel.
    Encrypted Secrets are decrypted after the cache, in memory (`decryptor`; left encrypted without one).
    `workers`: running kustomize processes to build in (the CLI without them)."""
    rendered = RenderedEnv(commit=commit, tree=tree, env=env)
    paths = {stack.name: env.in_repository(stack.path) for stack in env.stacks}
    outputs: dict[str, Rendered] = {}
    misses: dict[str, str | None] = {}
    for stack in env.stacks:
        emit(stack.name, None, "render", f"rendering {stack.path}")
        try:
            check_vendored(tree, stack.name, paths[stack.name], env.sync.allow_remote_charts)
            key, found = cached_render(tree, stack.name, paths[stack.name], cache if object_id else None, object_id,
                                       workers)
        except ReconcilerError as exc:
            rendered.errors[stack.name] = str(exc)
            continue
        if found is not None:
            outputs[stack.name] = found
        else:
            misses[stack.name] = key

    def build(names: list[str]) -> list[tuple[str, Rendered | ReconcilerError]]:
        try:
            return list(zip(names, build_stacks(tree, [(name, paths[name], misses[name]) for name in names],
                                                cache if object_id else None, env.sync.render_timeout_s, workers)))
        except ReconcilerError as exc:
            return [(name, exc) for name in names]

    names = list(misses)
    shares = [names[i::RENDER_PARALLEL_WORKERS] for i in range(RENDER_PARALLEL_WORKERS)]
    for built in map_threads(build, [share for share in shares if share], RENDER_PARALLEL_WORKERS, "render"):
        for name, output in built:  # a share of the misses per worker, asked of it at once
            if isinstance(output, ReconcilerError):
                rendered.errors[name] = str(output)
            else:
                outputs[name] = output
    decrypt = (lambda name, objects: decryptor.objects(tree, name, objects, paths[name])) if decryptor else None
    for stack in env.stacks:
        if stack.name in outputs:
            _keep(rendered, cache, stack.name, paths[stack.name], outputs[stack.name].text, decrypt)
    _scope(env, rendered, discovered)
    emit(None, None, "policy", "evaluating policy")
    rendered.policy_report = evaluate_policy(env, rendered)
    return rendered


def _scope(env: EnvironmentConfig, rendered: RenderedEnv, discovered: Scope | None) -> None:
    """Identities as the API sees them (pipeline.scope); a namespaced object without a namespace is its
    stack's render error. A default namespace is part of the stack's digest: changing it is a change."""
    namespaced = scope_lookup([o for objects in rendered.objects.values() for o in objects], discovered)
    for stack in list(rendered.objects):
        try:
            rendered.objects[stack] = scoped_objects(env, stack, rendered.objects[stack], namespaced)
        except ReconcilerError as exc:
            rendered.errors[stack] = str(exc)
            rendered.objects.pop(stack)
            rendered.digests.pop(stack, None)
            continue
        default = env.default_namespace(env.stack(stack))
        if default and stack in rendered.digests:
            rendered.digests[stack] = hashlib.sha256(f"{rendered.digests[stack]}\n{default}".encode()).hexdigest()


Decrypt = Callable[[str, list[K8sObject]], list[K8sObject]]


def _keep(rendered: RenderedEnv, cache: RenderCache | None, stack: str, path: str, text: str,
          decrypt: Decrypt | None) -> None:
    """Parse (and decrypt) a stack's render into the result (a parse or decryption error is that stack's error)."""
    try:
        digest = hashlib.sha256(f"{path}\n{text}".encode()).hexdigest()
        rendered.digests[stack] = digest
        rendered.objects[stack] = _parsed(cache, stack, path, text, digest, decrypt)
    except ReconcilerError as exc:
        rendered.digests.pop(stack, None)
        rendered.errors[stack] = str(exc)


def _parsed(cache: RenderCache | None, stack: str, path: str, text: str, digest: str,
            decrypt: Decrypt | None) -> list[K8sObject]:
    """The stack's objects, parsed (and decrypted) again only when its rendered text changed, and then
    only its changed documents. Decrypted objects are kept in memory only (`RenderCache.parsed`), never
    written; the documents are kept as parsed, before decryption."""
    memo = f"{digest}:{'decrypted' if decrypt else 'as rendered'}"
    known = cache.parsed.get(stack) if cache is not None else None
    if known is not None and known[0] == memo:
        return list(known[1])
    earlier = known[2] if known is not None and known[3] == path else {}
    objects, documents = parse_reusing(text, earlier, stack=stack, base_dir=path)
    if decrypt is not None:
        objects = decrypt(stack, objects)
    if cache is not None:
        cache.parsed[stack] = (memo, tuple(objects), documents, path)
    return objects


def policy_folder(env: EnvironmentConfig) -> str:
    return env.in_repository(env.policy.directory)


def check_policy_folder(env: EnvironmentConfig, rendered: RenderedEnv) -> None:
    """A commit without the policy folder is an error, unless the environment turns policy off: deleting
    `policies/` must never turn enforcement off for the very commit that deletes it."""
    if env.policy.mode != "off" and rendered.policy_report is None:
        raise ConfigError(f"{env.file}: policy folder {policy_folder(env)!r} does not exist at {rendered.commit.short}",
                          fix="restore the folder in Git, or set `policy.mode: off` in the environment file to run "
                              "without policy")


def evaluate_policy(env: EnvironmentConfig, rendered: RenderedEnv):
    """The policy report of the whole environment, or None when the commit has no policies folder (or
    policy is off: nothing is evaluated). The policy package is imported only when there is a folder to
    read: a `reconciler sync` of an environment without policies does not pay for its import."""
    directory = rendered.tree / policy_folder(env)
    if not directory.is_dir():
        return None
    from reconciler.policy import evaluate, load_policies

    policies = load_policies(directory, env.name, mode_override=env.policy.mode)
    return evaluate(rendered.objects, policies, date.today())
