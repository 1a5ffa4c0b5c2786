"""A reconcile pass, end to end: a real Git remote, real kustomize, the real API server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client

from gitrepo import PushRepo
from reconciler.config import load_environment
from reconciler.engine import Engine
from reconciler.results import Action, StackState

pytestmark = pytest.mark.cluster


def configmap(name: str, namespace: str, data: dict) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


def kustomization(*resources: str) -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": list(resources)}


def write_stack(repo: PushRepo, stack: str, objects: list[dict]) -> None:
    repo.write(f"stacks/{stack}/objects.yaml", objects)
    repo.write(f"stacks/{stack}/kustomization.yaml", kustomization("objects.yaml"))


def make_env(tmp_path: Path, repo: PushRepo, name: str, stacks: list[dict], **sync: object) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name,
        "source": {"url": repo.url, "branch": "main"},
        "sync": {"interval": "5s", "healthTimeout": "60s", **sync},
        "stacks": stacks,
    }))
    return path


@pytest.fixture()
def repo(tmp_path: Path) -> PushRepo:
    return PushRepo(tmp_path / "git")


@pytest.fixture()
def engine_for(tmp_path: Path, kubeconfig: Path):
    def build(env_file: Path) -> Engine:
        return Engine(load_environment(env_file), cache_dir=tmp_path / "cache", kubeconfig=kubeconfig)
    return build


def read_configmap(api_client: client.ApiClient, namespace: str, name: str) -> dict | None:
    try:
        return client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace).data
    except client.ApiException:
        return None


def test_first_sync_creates_objects_and_records_the_commit(repo, engine_for, tmp_path, namespace, api_client):
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    sha = repo.commit("add settings")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))

    result = engine.sync()

    assert result.ok, result
    assert result.commit.sha == sha
    [stack] = result.stacks
    assert stack.state is StackState.APPLIED
    assert [c.action for c in stack.changes] == [Action.CREATE]
    assert read_configmap(api_client, namespace, "settings") == {"mode": "blue"}
    assert engine.status().stacks[0].commit == sha


def test_unchanged_pass_lists_once_per_kind_and_applies_nothing(repo, engine_for, tmp_path, namespace):
    write_stack(repo, "app", [configmap(f"cm-{i}", namespace, {"i": str(i)}) for i in range(5)])
    repo.commit("five configmaps")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.sync()
    engine.sync()  # records the stack as unchanged once

    again = engine.sync()

    assert again.stacks[0].state is StackState.UNCHANGED
    assert again.api_requests.get("patch", 0) == 0
    assert again.api_requests.get("list") == 1
    assert again.api_requests.get("get", 0) <= 1  # the inventory ConfigMap
    print(f"steady-state pass of 5 objects: {again.total_requests} API requests {again.api_requests}")


def test_a_new_commit_updates_only_the_changed_field(repo, engine_for, tmp_path, namespace, api_client):
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue", "size": "1"})])
    repo.commit("blue")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.sync()
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "green", "size": "1"})])
    repo.commit("green")

    result = engine.sync()

    [change] = result.stacks[0].changed
    assert change.action is Action.UPDATE
    assert [(f.path, f.desired, f.live) for f in change.fields] == [("data.mode", "green", "blue")]
    assert read_configmap(api_client, namespace, "settings")["mode"] == "green"


def test_an_object_removed_from_git_is_pruned(repo, engine_for, tmp_path, namespace, api_client):
    write_stack(repo, "app", [configmap("keep", namespace, {"a": "1"}), configmap("drop", namespace, {"b": "2"})])
    repo.commit("two")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.sync()
    write_stack(repo, "app", [configmap("keep", namespace, {"a": "1"})])
    repo.commit("drop one")

    result = engine.sync()

    assert [(c.id.name, c.action) for c in result.stacks[0].changed] == [("drop", Action.PRUNE)]
    assert read_configmap(api_client, namespace, "drop") is None
    assert read_configmap(api_client, namespace, "keep") == {"a": "1"}


def test_an_empty_render_refuses_to_prune(repo, engine_for, tmp_path, namespace, api_client):
    write_stack(repo, "app", [configmap("precious", namespace, {"a": "1"})])
    repo.commit("one")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.sync()
    repo.write("stacks/app/kustomization.yaml", kustomization())
    repo.commit("oops, emptied the stack")

    result = engine.sync()

    assert result.stacks[0].state is StackState.FAILED
    assert "refusing to prune" in result.stacks[0].reason
    assert read_configmap(api_client, namespace, "precious") == {"a": "1"}


def test_a_failing_stack_blocks_its_dependents_but_not_independent_stacks(
    repo, engine_for, tmp_path, namespace, api_client
):
    write_stack(repo, "base", [configmap("base", namespace, {"a": "1"})])
    repo.write("stacks/broken/kustomization.yaml", kustomization("missing.yaml"))
    write_stack(repo, "after", [configmap("after", namespace, {"a": "1"})])
    write_stack(repo, "side", [configmap("side", namespace, {"a": "1"})])
    repo.commit("one broken stack")
    engine = engine_for(make_env(tmp_path, repo, namespace, [
        {"name": "base", "path": "stacks/base"},
        {"name": "broken", "path": "stacks/broken", "dependsOn": ["base"]},
        {"name": "after", "path": "stacks/after", "dependsOn": ["broken"]},
        {"name": "side", "path": "stacks/side", "dependsOn": ["base"]},
    ]))

    result = engine.sync()

    states = {s.stack: s.state for s in result.stacks}
    assert states == {"base": StackState.APPLIED, "broken": StackState.FAILED,
                      "after": StackState.BLOCKED, "side": StackState.APPLIED}
    assert next(s for s in result.stacks if s.stack == "after").blocked_by == ["broken"]
    assert "kustomize build failed" in next(s for s in result.stacks if s.stack == "broken").reason
    assert read_configmap(api_client, namespace, "after") is None


def test_an_invalid_object_leaves_the_stack_unapplied(repo, engine_for, tmp_path, namespace, api_client):
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nosel", "namespace": namespace},
           "spec": {"template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}
    write_stack(repo, "app", [configmap("first", namespace, {"a": "1"}), bad])
    repo.commit("invalid deployment")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))

    result = engine.sync()

    assert result.stacks[0].state is StackState.FAILED
    assert "nosel" in result.stacks[0].reason and "selector" in result.stacks[0].reason
    assert read_configmap(api_client, namespace, "first") is None


def test_plan_shows_changes_and_changes_nothing(repo, engine_for, tmp_path, namespace, api_client):
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    repo.commit("blue")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))

    result = engine.plan()

    assert result.stacks[0].state is StackState.PLANNED
    assert [c.action for c in result.stacks[0].changes] == [Action.CREATE]
    assert read_configmap(api_client, namespace, "settings") is None
