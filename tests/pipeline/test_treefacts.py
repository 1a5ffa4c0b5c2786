"""An exported tree's facts (`treefacts`) give the answers the disk and Git give: Git ids, the inputs a
stack's render reads, the charts it would pull and whether a path stays inside the repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitrepo import PushRepo
from reconciler.errors import ConfigError
from reconciler.pipeline.envfile import inside
from reconciler.pipeline.helm_charts import remote_charts
from reconciler.pipeline.render_inputs import input_paths, kustomization_of
from reconciler.pipeline.source import GitSource
from reconciler.pipeline.treefacts import LISTING_FILE, tree_facts


def kustomization(**fields: object) -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}


def _linked_repository(repo: PushRepo) -> str:
    """Stacks reaching bases through folder and file links, sub-folders, `..` and a chart home."""
    repo.write("base/app/kustomization.yaml", kustomization(resources=["cm.yaml"]))
    repo.write("base/app/cm.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}})
    repo.write("shared/patch.yaml", "- op: add\n  path: /data\n  value: {}\n")
    repo.write("apps/web/kustomization.yaml", kustomization(
        resources=["linked", "site"], patches=[{"path": "patch.yaml", "target": {"kind": "ConfigMap"}}]))
    repo.write("apps/web/site/kustomization.yaml", kustomization(resources=["../../../base/app"]))
    (repo.work_path / "apps/web/linked").symlink_to("../../base/app")
    (repo.work_path / "apps/web/patch.yaml").symlink_to("../../shared/patch.yaml")
    repo.write("apps/web/site/deeper/notes.txt", "a folder below a walked one\n")
    (repo.work_path / "apps/web/site/deeper/up").symlink_to("../../../../shared")
    repo.write("apps/charts/kustomization.yaml", kustomization(helmCharts=[
        {"name": "vendored", "repo": "https://charts.example.test", "version": "1.0.0"},
        {"name": "pulled", "repo": "https://charts.example.test", "version": "2.0.0"}]))
    repo.write("apps/charts/charts/vendored-1.0.0/vendored/Chart.yaml", "name: vendored\nversion: 1.0.0\n")
    repo.write("apps/via-link/kustomization.yaml", kustomization(resources=["../charts-link"]))
    (repo.work_path / "apps/charts-link").symlink_to("charts")
    return repo.commit("stacks through links")


@pytest.fixture
def exported(repo: PushRepo, tmp_path: Path) -> tuple[PushRepo, Path, str]:
    sha = _linked_repository(repo)
    source = GitSource(repo.url, "main", tmp_path / "cache")
    source.fetch()
    return repo, source.export(sha), sha


def test_an_exported_tree_gives_every_path_the_git_id_git_gives(exported, tmp_path: Path) -> None:
    repo, tree, sha = exported
    facts = tree_facts(tree)
    assert facts is not None
    listed = subprocess.run(["git", "-C", str(repo.work_path), "ls-tree", "-r", "-t", "--name-only", sha],
                            capture_output=True, text=True, check=True).stdout.split()
    for path in ["", "apps/web/", *listed, "no/such/path"]:
        expected = subprocess.run(["git", "-C", str(repo.work_path), "rev-parse", "--verify", "-q",
                                   f"{sha}:{path.strip('/')}"], capture_output=True, text=True).stdout.strip()
        assert facts.object_id(path) == (expected or None), path


@pytest.mark.parametrize("stack", ["apps/web", "apps/web/site", "apps/charts", "apps/via-link", "base/app"])
def test_a_stack_in_an_exported_tree_has_the_inputs_and_charts_the_disk_gives(exported, stack: str) -> None:
    repo, tree, _ = exported
    assert input_paths(tree, stack) == input_paths(repo.work_path, stack)
    assert remote_charts(tree, stack) == remote_charts(repo.work_path, stack)


def test_the_chart_a_stack_would_pull_is_found_in_an_exported_tree(exported) -> None:
    _, tree, _ = exported
    assert [chart.name for chart in remote_charts(tree, "apps/charts")] == ["pulled"]
    assert [chart.kustomization for chart in remote_charts(tree, "apps/via-link")] == ["apps/charts"]


def test_a_stack_path_through_a_link_inside_an_exported_tree_stays_inside(exported) -> None:
    _, tree, _ = exported
    inside(tree, "apps/web/linked", "env.yaml", "stacks[0].path")
    inside(tree, "apps/web/site/deeper/up", "env.yaml", "stacks[0].path")
    with pytest.raises(ConfigError, match="leads outside the repository"):
        inside(tree, "apps/../..", "env.yaml", "stacks[0].path")


def test_a_file_named_like_the_listing_in_git_does_not_replace_it(repo: PushRepo, tmp_path: Path) -> None:
    repo.write(LISTING_FILE, "not a listing\n")
    repo.write("app/kustomization.yaml", kustomization(resources=[]))
    sha = repo.commit("a file named like the listing")
    source = GitSource(repo.url, "main", tmp_path / "cache")
    source.fetch()

    facts = tree_facts(source.export(sha))

    assert facts is not None and facts.object_id("app") == repo.repo.commit(sha).tree["app"].hexsha


def test_a_working_copy_has_no_facts(repo: PushRepo) -> None:
    repo.write("app/kustomization.yaml", kustomization(resources=[]))
    assert tree_facts(repo.work_path) is None


def test_the_next_commit_parses_only_the_kustomizations_it_changed(repo: PushRepo, tmp_path: Path) -> None:
    repo.write("base/kustomization.yaml", kustomization(resources=["cm.yaml"]))
    repo.write("app/kustomization.yaml", kustomization(resources=["../base"], namePrefix="a-"))
    first = repo.commit("first")
    repo.write("app/kustomization.yaml", kustomization(resources=["../base"], namePrefix="b-"))
    second = repo.commit("second")
    source = GitSource(repo.url, "main", tmp_path / "cache")
    source.fetch()
    before, after = tree_facts(source.export(first)), tree_facts(source.export(second))
    assert before is not None and after is not None

    assert after.kustomization("base") is before.kustomization("base")
    assert after.kustomization("app") == kustomization(resources=["../base"], namePrefix="b-")
    assert before.kustomization("app")["namePrefix"] == "a-"


def test_a_stacks_kustomization_is_read_from_its_trees_facts_not_parsed_again(repo: PushRepo, tmp_path: Path) -> None:
    repo.write("base/kustomization.yaml", kustomization(resources=["cm.yaml"]))
    repo.write("app/kustomization.yaml", kustomization(resources=["../base"]))
    first = repo.commit("first")
    repo.write("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n")
    second = repo.commit("a push to the base")
    source = GitSource(repo.url, "main", tmp_path / "cache")
    source.fetch()
    before, after = source.export(first), source.export(second)

    app = kustomization_of(after, "app")

    assert app == kustomization(resources=["../base"])
    assert app is kustomization_of(before, "app")  # the same Git blob: parsed once, for the render and the walk
