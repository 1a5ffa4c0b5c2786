"""What kustomize reads for one stack: the render cache's key, or None when it cannot be known.

The cache must never serve a stale render, so this errs on the side of "uncacheable". Every
kustomization reached from the stack is followed, wherever it lives (a sub-folder of the stack whose
own kustomization points at `../../../base/web` included), and keyed by its whole folder: the Git id
of a folder covers every file below it, so any file kustomize reads there (generator files, patch
files, replacement sources, Helm chart folders) is part of the key without being named. Files and
folders a kustomization names outside its own folder are keyed too. A stack is left uncached when a
kustomization has a remote reference, an absolute path, a path leaving the repository, an inline
generator or transformer configuration, a key this module does not know, or a symbolic link whose
target leaves the repository (a link inside it is followed: kustomize reads the target, not the
link).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from reconciler.pipeline.treefacts import TreeFolders, read_kustomization

_PATH_LISTS = ("resources", "bases", "components", "crds", "patchesStrategicMerge", "transformers",
               "generators", "validators", "configurations")
_PATH_ENTRIES = ("patches", "patchesJson6902", "replacements")
_GENERATORS = ("configMapGenerator", "secretGenerator")
_NO_PATHS = ("apiVersion", "kind", "metadata", "namespace", "namePrefix", "nameSuffix", "commonLabels", "labels",
             "commonAnnotations", "images", "replicas", "vars", "sortOptions", "buildMetadata", "generatorOptions",
             "helmGlobals", "helmCharts", "helmChartInflationGenerator", "openapi")


class Uncacheable(Exception):
    """kustomize may read something the key cannot see."""


def kustomization_of(tree_root: Path, folder: str) -> dict | None:
    """The parsed kustomization file of `folder` (relative to `tree_root`), or None when it has none: in an
    exported tree from its facts (parsed once per Git blob: a push re-reads every unchanged stack), else
    from the disk. Shared: callers must not change it."""
    folders = TreeFolders(tree_root)
    real = folders.real(folder)
    return folders.kustomization(real) if real is not None else read_kustomization(tree_root / folder)


def input_paths(tree_root: Path, stack_path: str) -> list[str] | None:
    """Repository-relative folders and files whose Git ids decide the stack's render, or None when
    the render cannot be cached (see the module docstring)."""
    try:
        keyed = _InputWalk(tree_root).run(stack_path)
    except Uncacheable:
        return None
    return [path for path in sorted(keyed) if not _covered(path, keyed)]


def _covered(path: str, keyed: set[str]) -> bool:
    """A path below another keyed folder: that folder's Git id already covers it."""
    if path and "" in keyed:
        return True
    parts = path.split("/")
    return any("/".join(parts[:end]) in keyed for end in range(1, len(parts)))


class _InputWalk:
    """A walk over the kustomizations reachable from one stack (each folder visited once). In an exported
    tree its facts answer (`treefacts`: no path resolved on the disk unless a link is on its way); in
    any other folder, the disk."""

    def __init__(self, tree_root: Path) -> None:
        self.folders = TreeFolders(tree_root)
        self.root = self.folders.root
        self.keyed: set[str] = set()
        self.pending: list[str] = []
        self.walked: set[str] = set()

    def run(self, stack_path: str) -> set[str]:
        self.pending.append(_normalise(PurePosixPath(stack_path)))
        visited: set[str] = set()
        while self.pending:
            current = self._real(self.pending.pop())
            if current in visited:
                continue
            visited.add(current)
            if not self._leads_to_dir(current):
                continue
            self._follow_links(current)
            kustomization = self.folders.kustomization(current) or {}
            for reference in references(kustomization):
                self._reference(current, reference)
        return self.keyed

    def _real(self, target: str) -> str:
        """Key `target` and, when a symbolic link leads there, the folder or file it really is."""
        self.keyed.add(target)
        real = self.folders.real(target)
        if real is None:
            raise Uncacheable(target)
        self.keyed.add(real)
        return real

    def _leads_to_dir(self, path: str) -> bool:
        """Whether `path` is a folder, links followed (False when it leads outside the repository)."""
        real = self.folders.real(path)
        return real is not None and self.folders.is_dir(real)

    def _reference(self, current: str, reference: str) -> None:
        if _is_remote(reference) or reference.startswith("/"):
            raise Uncacheable(reference)
        target = _normalise(PurePosixPath(current) / reference)
        self._visit(target)

    def _visit(self, target: str) -> None:
        """A folder is walked later; a file is keyed now."""
        if self._leads_to_dir(target):
            self.pending.append(target)
        else:
            self._real(target)

    def _follow_links(self, current: str) -> None:
        """Symbolic links below a keyed folder: Git keys the link text, kustomize reads the target.
        A folder inside one already walked is not walked again."""
        if any(current == done or current.startswith(done + "/") or not done for done in self.walked):
            return
        self.walked.add(current)
        if self.folders.facts:
            links = self.folders.facts.links_below(current)
        else:
            links = [(Path(folder) / name).relative_to(self.root).as_posix()
                     for folder, dirs, files in os.walk(self.root / current) for name in dirs + files
                     if (Path(folder) / name).is_symlink()]
        for link in links:
            self._visit(link)


def references(kustomization: dict) -> list[str]:
    """Every path a kustomization names. Raises Uncacheable for a field that may read files we cannot name."""
    unknown = [key for key in kustomization if key not in _PATH_LISTS + _PATH_ENTRIES + _GENERATORS + _NO_PATHS]
    if unknown:
        raise Uncacheable(unknown[0])
    found: list[str] = []
    for key in _PATH_LISTS:
        for entry in kustomization.get(key) or []:
            if not isinstance(entry, str) or "\n" in entry:
                raise Uncacheable(key)  # an inline generator or transformer configuration
            found.append(entry)
    for key in _PATH_ENTRIES:
        found += [p["path"] for p in kustomization.get(key) or [] if isinstance(p, dict) and p.get("path")]
    for key in _GENERATORS:
        for generator in kustomization.get(key) or []:
            for entry in (generator.get("files") or []) + (generator.get("envs") or []) + [generator.get("env")]:
                if isinstance(entry, str):
                    found.append(entry.split("=", 1)[-1])
    found += _helm_paths(kustomization)
    openapi = kustomization.get("openapi") or {}
    if isinstance(openapi, dict) and openapi.get("path"):
        found.append(openapi["path"])
    return found


def _helm_paths(kustomization: dict) -> list[str]:
    """The chart home (where vendored charts live) and every values file of `helmCharts`."""
    if kustomization.get("helmChartInflationGenerator"):
        raise Uncacheable("helmChartInflationGenerator")
    charts = kustomization.get("helmCharts") or []
    if not charts:
        return []
    globals_ = kustomization.get("helmGlobals") or {}
    found = [globals_.get("chartHome") or "charts"]
    if globals_.get("configHome"):
        found.append(globals_["configHome"])
    for chart in charts:
        if isinstance(chart, dict):
            found += [chart["valuesFile"]] if chart.get("valuesFile") else []
            found += [f for f in chart.get("additionalValuesFiles") or [] if isinstance(f, str)]
    return found


def _is_remote(reference: str) -> bool:
    return "://" in reference or reference.startswith(("github.com/", "git@", "gitlab.com/", "bitbucket.org/"))


def _normalise(path: PurePosixPath) -> str:
    """`a/b/../c` -> `a/c`; a path that climbs above the repository cannot be keyed."""
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if not parts:
                raise Uncacheable(str(path))
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return "/".join(parts)
