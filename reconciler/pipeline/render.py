"""kustomize build of one stack, through the CLI (no shell), with a timeout and a render cache.

The cache key is what kustomize reads, not just the stack's folder: the Git object ids of the
stack path and of every local directory or file its kustomizations reference (resources, bases,
components, patches, generators), followed transitively. An overlay whose base changed is
re-rendered; a stack nobody touched is not. Kustomizations with remote resources are not cached.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable


from reconciler.errors import ConfigError, RenderError
from reconciler.yamlfile import load_yaml_file

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
RENDER_TIMEOUT_S = 120.0


def kustomize_command() -> list[str]:
    """`kustomize build`, or `kubectl kustomize` when only kubectl is installed."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    raise RenderError("neither kustomize nor kubectl is on PATH", fix="install kustomize (or kubectl >= 1.14)")


_KLOG_PREFIX = re.compile(r'^[EWI]\d{4} [\d:.]+\s+\d+ \S+\] ("command failed" err=)?')


def run_kustomize(directory: Path, stack: str, timeout_s: float = RENDER_TIMEOUT_S, where: str = "") -> str:
    command = [*kustomize_command(), str(directory)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"stack {stack!r}: kustomize did not finish within {timeout_s:.0f}s",
                          fix="look for remote resources or very large generators") from exc
    if result.returncode != 0:
        message = _KLOG_PREFIX.sub("", " ".join(result.stderr.strip().split()))[:800]
        raise RenderError(f"stack {stack!r}: kustomize build of {where or directory} failed: {message}",
                          fix="run `kubectl kustomize` on the stack path and fix the reported file")
    return result.stdout


def _kustomization(directory: Path) -> dict | None:
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            try:
                data = load_yaml_file(path)
            except ConfigError as exc:
                raise RenderError(exc.message, fix=exc.fix) from exc
            return data if isinstance(data, dict) else {}
    return None


def _referenced_paths(kustomization: dict) -> list[str]:
    """Every local path a kustomization names (remote URLs included: the caller checks them)."""
    found: list[str] = []
    for key in ("resources", "bases", "components", "crds", "patchesStrategicMerge", "transformers",
                "generators", "validators", "configurations"):
        found += [p for p in kustomization.get(key) or [] if isinstance(p, str)]
    for key in ("patches", "patchesJson6902", "replacements"):
        found += [p["path"] for p in kustomization.get(key) or [] if isinstance(p, dict) and p.get("path")]
    for key in ("configMapGenerator", "secretGenerator"):
        for generator in kustomization.get(key) or []:
            for entry in (generator.get("files") or []) + (generator.get("envs") or []) + [generator.get("env")]:
                if isinstance(entry, str):
                    found.append(entry.split("=", 1)[-1])
    openapi = kustomization.get("openapi") or {}
    if isinstance(openapi, dict) and openapi.get("path"):
        found.append(openapi["path"])
    return found


def _is_remote(reference: str) -> bool:
    return "://" in reference or reference.startswith(("github.com/", "git@", "gitlab.com/", "bitbucket.org/"))


def input_paths(tree_root: Path, stack_path: str) -> list[str] | None:
    """Repository-relative paths kustomize reads for `stack_path`, or None when a remote resource
    makes the render uncacheable."""
    seen: set[str] = set()
    pending = [PurePosixPath(stack_path)]
    while pending:
        current = pending.pop()
        key = str(current)
        if key in seen:
            continue
        seen.add(key)
        directory = tree_root / current
        if not directory.is_dir():
            continue
        kustomization = _kustomization(directory) or {}
        for reference in _referenced_paths(kustomization):
            if _is_remote(reference):
                return None
            target = PurePosixPath(_normalise(current / reference))
            if not _inside(str(current), str(target)):
                pending.append(target)
    return sorted(seen)


def _normalise(path: PurePosixPath) -> str:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def _inside(parent: str, child: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


@dataclass
class RenderCache:
    """Rendered YAML on disk, keyed by the hash of the Git ids of every input path; and, in memory,
    the objects parsed from the last render of each stack (parsing is most of a cached render's time)."""

    directory: Path
    parsed: dict = field(default_factory=dict)  # stack -> (digest of the text, parsed objects)

    def get(self, key: str) -> str | None:
        path = self.directory / f"{key}.yaml"
        return path.read_text() if path.is_file() else None

    def put(self, key: str, text: str) -> None:
        """Best effort: a cache that cannot be written (a full disk) costs the next pass a kustomize run."""
        partial = self.directory / f".{key}.partial"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial.write_text(text)
            partial.replace(self.directory / f"{key}.yaml")
        except OSError:
            partial.unlink(missing_ok=True)


def cache_key(paths: list[str], object_id: Callable[[str], str | None]) -> str | None:
    digest = hashlib.sha256(b"render-v1\n")
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
) -> Rendered:
    """Render `stack_path` (relative to `tree_root`), reusing the cache when every input is unchanged."""
    key, cached = cached_render(tree_root, stack, stack_path, cache, object_id)
    if cached is not None:
        return cached
    return build_stack(tree_root, stack, stack_path, cache, key, timeout_s)


def cached_render(tree_root: Path, stack: str, stack_path: str, cache: RenderCache | None,
                  object_id: Callable[[str], str | None] | None) -> tuple[str | None, Rendered | None]:
    """The cache key of the stack's inputs, and its cached render if there is one. In-process and quick
    (Git ids from the object database), so callers do this one stack at a time and build misses in parallel."""
    directory = tree_root / stack_path
    if _kustomization(directory) is None:
        raise RenderError(f"stack {stack!r}: no kustomization.yaml in {stack_path!r} at this commit",
                          fix="create the overlay or correct the stack's path in the environment file")
    if cache is None or object_id is None:
        return None, None
    paths = input_paths(tree_root, stack_path)
    key = cache_key(paths, object_id) if paths is not None else None
    text = cache.get(key) if key else None
    return key, Rendered(stack, text, cached=True) if text is not None else None


def build_stack(tree_root: Path, stack: str, stack_path: str, cache: RenderCache | None, key: str | None,
                timeout_s: float = RENDER_TIMEOUT_S) -> Rendered:
    """Run kustomize for one stack and cache its output under `key` (thread-safe: one process, one file)."""
    text = run_kustomize(tree_root / stack_path, stack, timeout_s, where=stack_path)
    if cache is not None and key:
        cache.put(key, text)
    return Rendered(stack, text, cached=False)
