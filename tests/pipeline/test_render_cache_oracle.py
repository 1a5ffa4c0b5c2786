"""The render cache's differential oracle: after every commit, the cached render of a stack (built, on a
miss, in a kustomize worker, as engines build) equals a fresh `kustomize build` CLI run on the same tree.

Hypothesis draws a repository of nested kustomizations (a stack whose sub-folder reaches a base
outside the stack, components, generators reading files, patches from files, a symbolic link to a
base, a vendored Helm chart outside the stack with a values file inside it) and a run of edits,
committed one after another. Any cache change that lets kustomize read
something its key does not see, and any way a worker's build differs from the CLI's, fails here with
the smallest edit sequence that shows it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitrepo import PushRepo
from reconciler.errors import RenderError
from reconciler.pipeline.kustomize_workers import KustomizeWorkers
from reconciler.pipeline.render import RenderCache, render_stack, run_kustomize
from reconciler.pipeline.source import GitSource

BASES = 3
COMPONENTS = 2
STACK = "apps/web"
VALUE_FILES = [f"base/b{i}/{name}" for i in range(BASES) for name in ("cm.yaml", "data.txt", "patch.yaml")] + [
    f"components/c{j}/patch.yaml" for j in range(COMPONENTS)] + [
    "apps/web/site/site.txt", "apps/web/site/local.yaml", "apps/web/site/patch.yaml", "docs/notes.txt"]
CHART_FILES = ["charts/webapp/values.yaml", "charts/webapp/templates/settings.yaml", "charts/webapp/Chart.yaml",
               "apps/web/site/chart-values.yaml"]

values = st.text(alphabet="abcxyz019", min_size=1, max_size=4)
edits = st.one_of(
    st.tuples(st.just("value"), st.sampled_from(VALUE_FILES), values),
    st.tuples(st.just("value"), st.sampled_from(CHART_FILES), values),
    st.tuples(st.just("base"), st.integers(0, BASES - 1)),
    st.tuples(st.just("component"), st.integers(0, COMPONENTS - 1)),
    st.tuples(st.just("link"), st.integers(0, BASES - 1)),
    st.tuples(st.just("use-link"), st.booleans()),
)


def kustomization(**fields: object) -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}


def configmap(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}


def label_patch(key: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "any", "labels": {key: value}}}


class OracleRepo:
    """The repository an example edits: files kept in a dict, written and committed on each step."""

    def __init__(self, root: Path) -> None:
        self.git = PushRepo(root / "git")
        self.base = 0
        self.components: set[int] = set()
        self.link_target = 0
        self.use_link = False
        self.values: dict[str, str] = {path: "0" for path in VALUE_FILES + CHART_FILES}
        for i in range(BASES):
            self.git.write(f"base/b{i}/kustomization.yaml", kustomization(
                resources=["cm.yaml"], patches=[{"path": "patch.yaml", "target": {"kind": "ConfigMap"}}],
                configMapGenerator=[{"name": f"gen-b{i}", "files": ["data.txt"]}]))
        for j in range(COMPONENTS):
            self.git.write(f"components/c{j}/kustomization.yaml", {
                "apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component",
                "patches": [{"path": "patch.yaml", "target": {"kind": "ConfigMap"}}]})

    def apply(self, edit: tuple) -> None:
        kind = edit[0]
        if kind == "value":
            self.values[edit[1]] = edit[2]
        elif kind == "base":
            self.base = edit[1]
        elif kind == "component":
            self.components ^= {edit[1]}
        elif kind == "link":
            self.link_target = edit[1]
        else:
            self.use_link = edit[1]

    def commit(self, message: str) -> None:
        for path, value in self.values.items():
            name = Path(path).name
            if name == "cm.yaml":
                self.git.write(path, configmap(f"cm-{Path(path).parent.name}", value))
            elif name == "local.yaml":
                self.git.write(path, configmap("local", value))
            elif name == "patch.yaml":
                self.git.write(path, label_patch(Path(path).parent.name, value))
            elif path.startswith("charts/") or name == "chart-values.yaml":
                self.git.write(path, chart_file(name, value))
            else:
                self.git.write(path, value + "\n")
        resources = [f"../../../base/b{self.base}", "local.yaml"] + (["../linked"] if self.use_link else [])
        self.git.write("apps/web/site/kustomization.yaml", kustomization(
            resources=resources, patches=[{"path": "patch.yaml", "target": {"name": "local"}}],
            configMapGenerator=[{"name": "gen-site", "files": ["site.txt"]}], nameSuffix="-site",
            helmGlobals={"chartHome": "../../../charts"},
            helmCharts=[{"name": "webapp", "releaseName": "web", "valuesFile": "chart-values.yaml"}]))
        self.git.write("apps/web/kustomization.yaml", kustomization(
            resources=["site"], components=[f"../../components/c{j}" for j in sorted(self.components)]))
        link = self.git.work_path / "apps/web/linked"
        if link.is_symlink():
            link.unlink()
        os.symlink(f"../../base/b{self.link_target}", link)
        self.git.commit(message)


def chart_file(name: str, value: str) -> str:
    """The chart's files and the stack's values file, each carrying the edited value somewhere it renders."""
    if name == "Chart.yaml":
        return f"apiVersion: v2\nname: webapp\nversion: 0.1.{sum(map(ord, value)) % 50}\n"
    if name == "values.yaml":
        return f"greeting: g{value}\nextra: none\n"
    if name == "chart-values.yaml":
        return f"extra: e{value}\n"
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chart-{{ .Release.Name }}\n"
            f"  labels: {{version: \"{{{{ .Chart.Version }}}}\", template: t{value}}}\n"
            "data:\n  greeting: {{ .Values.greeting | quote }}\n  extra: {{ .Values.extra | quote }}\n")


@pytest.mark.long
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(edits, min_size=1, max_size=6))
def test_a_cached_render_always_equals_a_fresh_kustomize_build(steps: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        repo = OracleRepo(root)
        source = GitSource(repo.git.url, "main", root / "cache")
        cache = RenderCache(root / "cache" / "render")
        workers = KustomizeWorkers.installed(size=1)
        assert workers is not None, "`make tools` installs kustomize-worker"
        for number, edit in enumerate([("value", "docs/notes.txt", "start"), *steps]):
            repo.apply(edit)
            repo.commit(f"step {number}: {edit}")
            commit = source.fetch()
            tree = source.export(commit.sha)
            cached = outcome(lambda: render_stack(tree, "web", STACK, cache,
                                                  lambda p, sha=commit.sha: source.tree_hash(sha, p),
                                                  workers=workers).text)
            fresh = outcome(lambda: run_kustomize(tree / STACK, "web"))
            assert cached == fresh, f"step {number} ({edit}): the cached render differs from a fresh build"
        workers.close()


def outcome(render) -> list | str:
    """The rendered documents, or "error" when kustomize refuses the tree (two bases rendering one object)."""
    try:
        return list(yaml.safe_load_all(render()))
    except RenderError:
        return "error"
