"""Which environment file is in force: the one in Git at the commit a pass applies.

The file the reconciler is started with (a checkout's `environments/<env>.yaml`, or the ConfigMap in
`deploy/`) says where the source is, which environment file in it to follow (`source.environment`;
the file's own path when it lives in the source repository) and what must stay out of Git: the
cluster, credentials, trusted keys. Everything else (stacks, dependsOn, sync, policy, rollback) is
read from the followed file at the commit, so adding, removing or reordering stacks is a `git push`,
as preview already shows it. The name, source (except `source.path`, a layout of the repository) and
cluster, and the decryption keys, always come from the local file: a commit cannot point the
reconciler at another cluster, another repository, its own signing keys, a key file of its choosing,
or a commit-status API that would receive the token.

Every path the file in force names must stay inside the repository tree, symbolic links included.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.config import EnvironmentConfig, leaves_repository, load_environment, repository_root
from reconciler.errors import ConfigError
from reconciler.pipeline.treefacts import tree_facts
from reconciler.results import CommitInfo


def followed_path(local: EnvironmentConfig) -> str | None:
    """The environment file's path in the source repository, or None when the local file is in force
    (a remote source that names no `source.environment`: a repository of manifests only)."""
    if local.source.environment:
        return local.source.environment.strip("/")
    if local.source.url or not local.file:
        return None
    file = Path(local.file).resolve()
    try:
        return file.relative_to(repository_root(file)).as_posix()
    except ValueError:
        return None


def environment_at(local: EnvironmentConfig, tree: Path, commit: CommitInfo) -> EnvironmentConfig:
    """The environment in force at `commit` (whose files are `tree`). ConfigError naming the file and
    the commit when the file is missing or invalid there, or names a path outside the repository."""
    relative = followed_path(local)
    if relative is None:
        check_paths_inside(local, tree, local.file)
        return local
    where = f"{relative}@{commit.short}"
    path = tree / relative
    inside(tree, relative, where, "source.environment")
    if not path.is_file():
        raise ConfigError(f"{where}: the environment file to follow does not exist at this commit",
                          fix="restore the file in Git, or point source.environment at the file that replaced it")
    try:
        followed = load_environment(path, check_overlays=False)
    except ConfigError as exc:
        raise ConfigError(exc.message.replace(str(path), where), fix=exc.fix) from exc
    declared = followed.name != path.stem or _declares_name(path)
    if declared and followed.name != local.name:
        raise ConfigError(f"{where}: declares environment {followed.name!r}, but {local.file} is {local.name!r}",
                          fix="follow the file of this environment (source.environment) or correct `name:` in Git")
    source = local.source.model_copy(update={"path": followed.source.path or local.source.path})
    env = followed.model_copy(update={"name": local.name, "source": source, "cluster": local.cluster,
                                      "decryption": local.decryption, "commit_status": local.commit_status,
                                      "file": where})
    check_paths_inside(env, tree, where)
    return env


def _declares_name(path: Path) -> bool:
    return any(line.startswith("name:") for line in path.read_text().splitlines())


def check_paths_inside(env: EnvironmentConfig, tree: Path, where: str) -> None:
    """`source.path`, every stack path and the policy folder resolve inside `tree` (symbolic links
    followed). ConfigError naming the field otherwise: a pusher could read the host's files."""
    inside(tree, env.source.path.strip("/"), where, "source.path")
    for index, stack in enumerate(env.stacks):
        inside(tree, env.in_repository(stack.path), where, f"stacks[{index}] ({stack.name}).path")
    inside(tree, env.in_repository(env.policy.directory), where, "policy.directory")


def inside(tree: Path, relative: str, where: str, field: str) -> None:
    """`relative` (a path in the repository) leads to a place inside `tree`, or ConfigError."""
    facts = tree_facts(tree)
    try:
        outside = leaves_repository(relative)
        if facts is None:
            (tree / relative).resolve().relative_to(tree.resolve())
        elif facts.real(relative) is None:
            outside = True
    except ValueError:
        outside = True
    if outside:
        raise ConfigError(f"{where}: field {field}: {relative!r} leads outside the repository",
                          fix="use a path inside the repository, without '..' or a symbolic link that leaves it")
