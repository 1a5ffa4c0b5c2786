"""Rendering: the real kustomize CLI from an exact commit, cached by everything kustomize reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitrepo import PushRepo
from reconciler.errors import RenderError, SourceError
from reconciler.objects import parse_objects
from reconciler.pipeline.kustomize_workers import KustomizeWorkers
from reconciler.pipeline.render import RenderCache, Rendered, build_stacks, input_paths, render_stack
from reconciler.pipeline.source import GitSource, redact_url


def kustomization(**fields: object) -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}


def configmap(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}


@pytest.fixture()
def repo(tmp_path: Path) -> PushRepo:
    repo = PushRepo(tmp_path / "git")
    repo.write("base/app/cm.yaml", configmap("app", "1"))
    repo.write("base/app/kustomization.yaml", kustomization(resources=["cm.yaml"]))
    repo.write("overlays/dev/app/kustomization.yaml", kustomization(
        resources=["../../../base/app"], namespace="dev", buildMetadata=["originAnnotations"]))
    repo.write("overlays/dev/other/kustomization.yaml", kustomization(resources=["cm.yaml"]))
    repo.write("overlays/dev/other/cm.yaml", configmap("other", "1"))
    repo.commit("initial")
    return repo


def render(repo: PushRepo, tmp_path: Path, stack_path: str):
    source = GitSource(repo.url, "main", tmp_path / "cache")
    commit = source.fetch()
    tree = source.export(commit.sha)
    return render_stack(tree, "app", stack_path, RenderCache(tmp_path / "cache" / "render"),
                        lambda p: source.tree_hash(commit.sha, p))


def test_the_inputs_of_an_overlay_include_its_bases(repo: PushRepo) -> None:
    assert input_paths(repo.work_path, "overlays/dev/app") == ["base/app", "overlays/dev/app"]


def test_an_unchanged_stack_comes_from_the_cache(repo: PushRepo, tmp_path: Path) -> None:
    first = render(repo, tmp_path, "overlays/dev/app")
    repo.write("overlays/dev/other/cm.yaml", configmap("other", "2"))
    repo.commit("change another stack")

    second = render(repo, tmp_path, "overlays/dev/app")

    assert (first.cached, second.cached) == (False, True)
    assert second.text == first.text


def test_a_change_in_the_base_re_renders_the_overlay(repo: PushRepo, tmp_path: Path) -> None:
    render(repo, tmp_path, "overlays/dev/app")
    repo.write("base/app/cm.yaml", configmap("app", "2"))
    repo.commit("change the base")

    again = render(repo, tmp_path, "overlays/dev/app")

    assert not again.cached
    [obj] = parse_objects(again.text, stack="app", base_dir="overlays/dev/app")
    assert obj.manifest["data"] == {"v": "2"}
    assert obj.source_file == "base/app/cm.yaml"
    assert obj.id.namespace == "dev"


def test_a_kustomize_error_names_the_stack_and_the_message(repo: PushRepo, tmp_path: Path) -> None:
    repo.write("overlays/dev/app/kustomization.yaml", kustomization(resources=["missing.yaml"]))
    repo.commit("broken overlay")

    with pytest.raises(RenderError) as error:
        render(repo, tmp_path, "overlays/dev/app")

    assert "stack 'app': kustomize build of" in str(error.value) and "failed" in str(error.value)
    assert "missing.yaml" in str(error.value)


@pytest.mark.parametrize("in_a_worker", [False, True], ids=["kustomize process", "kustomize worker"])
def test_a_kustomize_error_names_a_missing_file_by_its_path_in_the_repository(
        repo: PushRepo, tmp_path: Path, in_a_worker: bool) -> None:
    repo.write("overlays/dev/app/kustomization.yaml", kustomization(resources=["../../../base/app"],
                                                                    patches=[{"path": "missing-patch.yaml"}]))
    repo.commit("a patch that is not there")
    source = GitSource(repo.url, "main", tmp_path / "cache")
    tree = source.export(source.fetch().sha)
    workers = KustomizeWorkers.installed(size=1) if in_a_worker else None
    try:
        [built] = build_stacks(tree, [("app", "overlays/dev/app", None)], None, workers=workers)
    finally:
        if workers is not None:
            workers.close()

    assert isinstance(built, RenderError)
    assert "'overlays/dev/app/missing-patch.yaml'" in str(built)
    assert str(tmp_path / "cache") not in str(built)  # not where the commit was exported


def test_a_missing_overlay_at_the_commit_is_a_clear_error(repo: PushRepo, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="no kustomization.yaml in 'overlays/prod/app' at this commit"):
        render(repo, tmp_path, "overlays/prod/app")


def test_renders_read_the_fetched_commit_not_the_working_copy(repo: PushRepo, tmp_path: Path) -> None:
    repo.write("base/app/cm.yaml", configmap("app", "uncommitted"))

    rendered = render(repo, tmp_path, "overlays/dev/app")

    assert "uncommitted" not in rendered.text


def test_a_missing_branch_is_a_source_error(repo: PushRepo, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="branch 'release' not found"):
        GitSource(repo.url, "release", tmp_path / "cache").fetch()


def test_credentials_are_removed_from_urls_in_messages() -> None:
    assert redact_url("https://bot:s3cret@git.example.test/platform.git") == "https://git.example.test/platform.git"


def test_a_base_reached_from_a_sub_folder_of_the_stack_is_an_input(repo: PushRepo) -> None:
    repo.write("apps/web/kustomization.yaml", kustomization(resources=["site"]))
    repo.write("apps/web/site/kustomization.yaml", kustomization(resources=["../../../base/app"]))

    assert input_paths(repo.work_path, "apps/web") == ["apps/web", "base/app"]


def test_a_stack_with_a_remote_base_is_not_cached(repo: PushRepo) -> None:
    repo.write("apps/web/kustomization.yaml", kustomization(resources=["https://example.test/base?ref=v1"]))

    assert input_paths(repo.work_path, "apps/web") is None


def test_a_stack_with_an_inline_generator_configuration_is_not_cached(repo: PushRepo) -> None:
    inline = "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: x\n"
    repo.write("apps/web/kustomization.yaml", kustomization(generators=[inline]))

    assert input_paths(repo.work_path, "apps/web") is None


def test_a_symbolic_link_to_a_folder_outside_the_repository_is_not_cached(repo: PushRepo, tmp_path: Path) -> None:
    repo.write("apps/web/kustomization.yaml", kustomization(resources=["outside"]))
    (repo.work_path / "apps/web/outside").symlink_to(tmp_path)

    assert input_paths(repo.work_path, "apps/web") is None


def test_a_symbolic_link_inside_the_repository_keys_its_target(repo: PushRepo) -> None:
    repo.write("apps/web/kustomization.yaml", kustomization(resources=["linked"]))
    (repo.work_path / "apps/web/linked").symlink_to("../../base/app")

    assert input_paths(repo.work_path, "apps/web") == ["apps/web", "base/app"]


def test_stacks_built_at_once_in_one_worker_each_render_or_fail_as_they_do_one_by_one(
        repo: PushRepo, tmp_path: Path) -> None:
    repo.write("overlays/dev/broken/kustomization.yaml", kustomization(resources=["missing.yaml"]))
    repo.commit("a broken stack beside the others")
    source = GitSource(repo.url, "main", tmp_path / "cache")
    tree = source.export(source.fetch().sha)
    workers = KustomizeWorkers.installed(size=1)
    asked: list[int] = []
    build_all = workers.build_all
    workers.build_all = lambda requests, timeout_s: asked.append(len(requests)) or build_all(requests, timeout_s)
    stacks = [("app", "overlays/dev/app", None), ("broken", "overlays/dev/broken", None), ("other", "overlays/dev/other", None)]
    try:
        together = build_stacks(tree, stacks, None, workers=workers)
    finally:
        workers.close()

    for (stack, path, _), built in zip(stacks, together, strict=True):
        try:
            alone = render_stack(tree, stack, path).text
        except RenderError as exc:
            alone = str(exc)
        assert (built.text if isinstance(built, Rendered) else str(built)) == alone, stack
    assert isinstance(together[1], RenderError)
    assert asked == [2]  # the two stacks kustomize builds, asked at once; the plain one read directly


def test_stacks_built_at_once_where_no_worker_can_start_are_built_by_the_cli(repo: PushRepo, tmp_path: Path) -> None:
    source = GitSource(repo.url, "main", tmp_path / "cache")
    tree = source.export(source.fetch().sha)

    [built] = build_stacks(tree, [("app", "overlays/dev/app", None)], None,
                           workers=KustomizeWorkers(str(tmp_path / "no-such-worker")))

    assert isinstance(built, Rendered) and built.text == render_stack(tree, "app", "overlays/dev/app").text
