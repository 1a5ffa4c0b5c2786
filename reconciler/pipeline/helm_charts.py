"""Helm charts a stack renders must be vendored in the repository, unless the environment allows pulls.

kustomize's `helmCharts` pulls a chart from its `repo` when the chart is not already in the chart
home (`<chartHome>/<name>` without a version, `<chartHome>/<name>-<version>/<name>` with one). A pull
at render time makes the render depend on a server that may change or disappear, bypasses review,
and cannot be keyed by the render cache, so it is refused with the command that vendors the chart,
unless `sync.allowRemoteCharts` says otherwise (Argo CD's default is to pull; Flux renders no charts
through kustomize at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import RenderError
from reconciler.pipeline.treefacts import TreeFolders

_FOLDER_LISTS = ("resources", "bases", "components")


@dataclass(frozen=True)
class RemoteChart:
    """A `helmCharts` entry whose chart is not in the repository."""

    kustomization: str  # the folder of the kustomization naming it, relative to the repository
    name: str
    repo: str
    version: str
    chart_home: str

    def vendor_command(self) -> str:
        folder = f"{self.chart_home}/{self.name}-{self.version}" if self.version else self.chart_home
        version = f" --version {self.version}" if self.version else ""
        return f"helm pull {self.name} --repo {self.repo}{version} --untar --untardir {folder}"


def remote_charts(tree_root: Path, stack_path: str) -> list[RemoteChart]:
    """Every chart the stack's kustomizations would pull, following local bases and components (in an
    exported tree from its facts, `treefacts`; elsewhere from the disk)."""
    folders = TreeFolders(tree_root)
    found: list[RemoteChart] = []
    pending, seen = [stack_path], set()
    while pending:
        folder = folders.real(pending.pop())
        if folder is None or folder in seen or not folders.is_dir(folder):
            continue
        seen.add(folder)
        kustomization = folders.kustomization(folder) or {}
        found += _remote_in(kustomization, folders, folder)
        for key in _FOLDER_LISTS:
            for entry in kustomization.get(key) or []:
                if isinstance(entry, str) and "://" not in entry and not entry.startswith("/"):
                    pending.append(f"{folder}/{entry}" if folder else entry)
    return found


def _remote_in(kustomization: dict, folders: TreeFolders, folder: str) -> list[RemoteChart]:
    home = str((kustomization.get("helmGlobals") or {}).get("chartHome") or "charts")
    found = []
    for chart in kustomization.get("helmCharts") or []:
        if not isinstance(chart, dict) or not chart.get("repo") or not chart.get("name"):
            continue
        name, version = str(chart["name"]), str(chart.get("version") or "")
        if not folders.has_folder(folder, f"{home}/{name}-{version}/{name}" if version else f"{home}/{name}"):
            found.append(RemoteChart(folder, name, str(chart["repo"]), version, home))
    return found


def check_vendored(tree_root: Path, stack: str, stack_path: str, allow_remote: bool) -> None:
    """Raise a RenderError naming the first chart that would be pulled, and how to vendor it."""
    if allow_remote:
        return
    charts = remote_charts(tree_root, stack_path)
    if charts:
        chart = charts[0]
        where = f"{chart.kustomization}/kustomization.yaml" if chart.kustomization else "kustomization.yaml"
        version = f" {chart.version}" if chart.version else ""
        raise RenderError(
            f"stack {stack!r}: Helm chart {chart.name!r}{version} in {where} is not vendored in the repository "
            f"(it would be pulled from {chart.repo})",
            fix=f"vendor it: in {chart.kustomization or '.'}, run `{chart.vendor_command()}` and commit the chart; "
                "or set `sync.allowRemoteCharts: true` in the environment file")
