"""kustomize build of one stack, with a timeout and a render cache: in a running `kustomize-worker`
(`pipeline.kustomize_workers`, the CLI's build command without a process start per stack) when one is
installed, else through the CLI (no shell).

The cache key is what kustomize reads (`render_inputs`: the Git ids of every folder and file the
stack's kustomizations reach, followed transitively) and which kustomize reads it. An overlay whose
base changed is re-rendered; a stack nobody touched is not; a stack whose inputs cannot all be
named (remote bases, inline generators) is rendered every time.

A kustomization that only lists YAML files is read directly (`pipeline.plain`): the same objects,
without kustomize's quadratic build.

Helm charts render through kustomize's `helmCharts` (`--enable-helm`) with the `helm` on PATH (the
project installs a pinned one); which helm renders is part of the cache key, as kustomize is.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from reconciler.errors import RenderError
from reconciler.files import write_whole
from reconciler.pipeline.kustomize_workers import BuildOutput, KustomizeWorkers, WorkerExited
from reconciler.pipeline.plain import plain_manifests
from reconciler.pipeline.render_inputs import input_paths, kustomization_of

RENDER_TIMEOUT_S = 120.0
T = TypeVar("T")


def kustomize_command() -> list[str]:
    """`kustomize build`, or `kubectl kustomize` when only kubectl is installed; with Helm charts
    enabled when a `helm` is installed (a stack without `helmCharts` never calls it)."""
    if shutil.which("kustomize"):
        command = ["kustomize", "build"]
    elif shutil.which("kubectl"):
        command = ["kubectl", "kustomize"]
    else:
        raise RenderError("neither kustomize nor kubectl is on PATH", fix="install kustomize (or kubectl >= 1.14)")
    helm = helm_binary()
    return [*command, "--enable-helm", f"--helm-command={helm}"] if helm else command


def helm_binary() -> str | None:
    """The `helm` kustomize runs for `helmCharts`: $RECONCILER_HELM, else the one on PATH."""
    return os.environ.get("RECONCILER_HELM") or shutil.which("helm")


_KLOG_PREFIX = re.compile(r'^[EWI]\d{4} [\d:.]+\s+\d+ \S+\] ("command failed" err=)?')


def run_kustomize(directory: Path, stack: str, timeout_s: float = RENDER_TIMEOUT_S, where: str = "",
                  workers: KustomizeWorkers | None = None) -> str:
    """`kustomize build` of `directory`: in a running worker when there are `workers` (the CLI if the worker
    dies during the build), else as a process of its own. Raises RenderError naming the stack."""
    if workers is not None:
        [built] = run_kustomize_all([(directory, stack, where or str(directory))], timeout_s, workers)
        if isinstance(built, RenderError):
            raise built
        return built
    try:
        result = subprocess.run([*kustomize_command(), str(directory)], capture_output=True, text=True,
                                timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise _timed_out(stack, timeout_s) from exc
    return _output(result, stack, where or str(directory), directory)


def run_kustomize_all(builds: list[tuple[Path, str, str]], timeout_s: float, workers: KustomizeWorkers
                      ) -> list[str | RenderError]:
    """`run_kustomize` of several (directory, stack, where) in one worker, asked at once
    (`KustomizeWorkers.build_all`): each the text or the RenderError `run_kustomize` would give. A build whose
    worker died is run by the CLI, as there."""
    command = kustomize_command()
    try:
        answers = workers.build_all([[*command[2:], str(directory)] for directory, _, _ in builds], timeout_s)
    except OSError:  # no worker could be started: the CLI builds them all
        answers = [WorkerExited(str(directory)) for directory, _, _ in builds]
    results: list[str | RenderError] = []
    for (directory, stack, where), answer in zip(builds, answers):
        if isinstance(answer, WorkerExited):
            results.append(_or_error(lambda: run_kustomize(directory, stack, timeout_s, where)))
        elif isinstance(answer, subprocess.TimeoutExpired):
            results.append(_timed_out(stack, timeout_s))
        elif isinstance(answer, Exception):
            raise answer
        else:
            results.append(_or_error(lambda: _output(answer, stack, where, directory)))
    return results


def _or_error(make: Callable[[], T]) -> T | RenderError:
    try:
        return make()
    except RenderError as exc:
        return exc


def _timed_out(stack: str, timeout_s: float) -> RenderError:
    return RenderError(f"stack {stack!r}: kustomize did not finish within {timeout_s:.0f}s",
                       fix="look for remote resources or very large generators")


def _output(result: subprocess.CompletedProcess | BuildOutput, stack: str, where: str, directory: Path) -> str:
    """The build's YAML, or the RenderError its failure means. `where`: the stack's path in the repository,
    `directory` the folder built (where the commit's tree was exported, under the cache directory)."""
    if result.returncode != 0:
        message = _in_repository_terms(_KLOG_PREFIX.sub("", " ".join(result.stderr.strip().split())), where,
                                       directory)[:800]
        if "must specify --enable-helm" in message:
            raise RenderError(f"stack {stack!r}: {where} uses helmCharts but no `helm` is installed",
                              fix="run `make build` (installs the pinned helm) or put helm v3 on PATH")
        raise RenderError(f"stack {stack!r}: kustomize build of {where} failed: {message}",
                          fix="run `kubectl kustomize` on the stack path and fix the reported file")
    return result.stdout


def _in_repository_terms(message: str, where: str, directory: Path) -> str:
    """kustomize names the files it could not read by absolute path, in the tree exported under the cache
    directory (`/var/cache/.../trees/<hash>/<commit>/overlays/dev/patch.yaml`): said as the repository's path
    (`overlays/dev/patch.yaml`), the one a person can open."""
    built = str(directory)
    if not where or not built.endswith(where) or built == where:
        return message
    root = built[: -len(where)]
    for prefix in dict.fromkeys((root, str(Path(root).resolve()) + "/")):
        message = message.replace(prefix, "")
    return message


@dataclass
class RenderCache:
    """Rendered YAML on disk, keyed by the hash of the Git ids of every input path; and, in memory,
    the objects parsed from the last render of each stack (parsing is most of a cached render's time)."""

    directory: Path
    parsed: dict = field(default_factory=dict)  # stack -> (digest of the text, objects, documents, stack path)

    def get(self, key: str) -> str | None:
        path = self.directory / f"{key}.yaml"
        return path.read_text() if path.is_file() else None

    def put(self, key: str, text: str) -> None:
        """Best effort: a cache that cannot be written (a full disk) costs the next pass a kustomize run."""
        write_whole(self.directory / f"{key}.yaml", text)


@functools.lru_cache(maxsize=4)
def _kustomize_identity(worker: str | None) -> str:
    """Which kustomize (the CLI, or the worker that runs its build) and helm render (path, size and
    modification time): a new binary is a new key."""
    command = kustomize_command()
    parts = [" ".join(command)]
    for name in (worker or command[0], helm_binary()):
        binary = Path(shutil.which(name) or name) if name else None
        try:
            stat = binary.stat() if binary else None
        except OSError:
            stat = None
        if stat:
            parts.append(f"{binary.resolve()} {stat.st_size} {stat.st_mtime_ns}")
    return " ".join(parts)


def cache_key(paths: list[str], object_id: Callable[[str], str | None],
              workers: KustomizeWorkers | None = None) -> str | None:
    """The hash of every input's Git id, or None when one of them has no id (it is not in Git)."""
    identity = _kustomize_identity(workers.binary if workers else None)
    digest = hashlib.sha256(f"render-v3\n{identity}\n".encode())  # v3: plain renders name their files
    for path in paths:
        oid = object_id(path)
        if oid is None:
            return None
        digest.update(f"{path}\t{oid}\n".encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class Rendered:
    stack: str
    text: str
    cached: bool


def render_stack(
    tree_root: Path,
    stack: str,
    stack_path: str,
    cache: RenderCache | None = None,
    object_id: Callable[[str], str | None] | None = None,
    timeout_s: float = RENDER_TIMEOUT_S,
    workers: KustomizeWorkers | None = None,
) -> Rendered:
    """Render `stack_path` (relative to `tree_root`), reusing the cache when every input is unchanged."""
    key, cached = cached_render(tree_root, stack, stack_path, cache, object_id, workers)
    if cached is not None:
        return cached
    return build_stack(tree_root, stack, stack_path, cache, key, timeout_s, workers)


def cached_render(tree_root: Path, stack: str, stack_path: str, cache: RenderCache | None,
                  object_id: Callable[[str], str | None] | None, workers: KustomizeWorkers | None = None
                  ) -> tuple[str | None, Rendered | None]:
    """The cache key of the stack's inputs, and its cached render if there is one. In-process and quick
    (Git ids from the object database), so callers do this one stack at a time and build misses in parallel."""
    if kustomization_of(tree_root, stack_path) is None:
        raise RenderError(f"stack {stack!r}: no kustomization.yaml in {stack_path!r} at this commit",
                          fix="create the overlay or correct the stack's path in the environment file")
    if cache is None or object_id is None:
        return None, None
    paths = input_paths(tree_root, stack_path)
    key = cache_key(paths, object_id, workers) if paths is not None else None
    text = cache.get(key) if key else None
    return key, Rendered(stack, text, cached=True) if text is not None else None


def build_stack(tree_root: Path, stack: str, stack_path: str, cache: RenderCache | None, key: str | None,
                timeout_s: float = RENDER_TIMEOUT_S, workers: KustomizeWorkers | None = None) -> Rendered:
    """Run kustomize for one stack (or read its plain manifests, pipeline.plain) and cache the output under
    `key` (thread-safe: one process, one file). Raises its RenderError."""
    [built] = build_stacks(tree_root, [(stack, stack_path, key)], cache, timeout_s, workers)
    if isinstance(built, RenderError):
        raise built
    return built


def build_stacks(tree_root: Path, stacks: list[tuple[str, str, str | None]], cache: RenderCache | None,
                 timeout_s: float = RENDER_TIMEOUT_S, workers: KustomizeWorkers | None = None
                 ) -> list[Rendered | RenderError]:
    """`build_stack` of several (stack, stack path, cache key), each Rendered or its RenderError: with
    `workers`, their kustomize builds asked of one worker at once (`run_kustomize_all`), else a CLI process
    each."""
    texts: list[str | RenderError | None] = [
        _or_error(lambda path=path: plain_manifests(tree_root / path, kustomization_of(tree_root, path)))
        for _, path, _ in stacks]
    builds = [i for i, text in enumerate(texts) if text is None]
    wanted = [(tree_root / stacks[i][1], stacks[i][0], stacks[i][1]) for i in builds]
    if workers is not None and wanted:
        built = run_kustomize_all(wanted, timeout_s, workers)
    else:
        built = [_or_error(lambda b=b: run_kustomize(b[0], b[1], timeout_s, where=b[2])) for b in wanted]
    for i, text in zip(builds, built):
        texts[i] = text
    results: list[Rendered | RenderError] = []
    for (stack, _, key), text in zip(stacks, texts):
        if isinstance(text, str) and cache is not None and key:
            cache.put(key, text)
        results.append(Rendered(stack, text, cached=False) if isinstance(text, str) else text)
    return results
