"""The inventory ConfigMap deleted or corrupted by hand: never a mass prune. A stack's lost record is
rebuilt from the owner labels on its live objects, so what Git dropped meanwhile is still pruned and
what Git wants is left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from manifests import configmap, make_env, write_stack
from reconciler.config import load_environment
from reconciler.pipeline.engine import Engine
from reconciler.pipeline.inventory import SYSTEM_NAMESPACE

pytestmark = pytest.mark.cluster


def _synced(tmp_path: Path, repo, namespace: str, kubeconfig: Path, names: list[str]) -> Path:
    write_stack(repo, "app", [configmap(n, namespace, {"n": n}) for n in names])
    repo.commit(f"{len(names)} configmaps")
    env_file = make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}])
    assert _engine(tmp_path, env_file, kubeconfig, "first").sync().ok
    return env_file


def _engine(tmp_path: Path, env_file: Path, kubeconfig: Path, name: str) -> Engine:
    """A fresh engine: a new process, which knows nothing but what the cluster holds."""
    return Engine(load_environment(env_file), cache_dir=tmp_path / f"cache-{name}", kubeconfig=kubeconfig)


def _live(api_client: client.ApiClient, namespace: str) -> set[str]:
    return {c.metadata.name for c in client.CoreV1Api(api_client).list_namespaced_config_map(namespace).items
            if c.metadata.name != "kube-root-ca.crt"}


def test_after_the_inventory_is_deleted_a_pass_rebuilds_it_from_owner_labels_and_prunes_only_what_git_dropped(
        tmp_path: Path, repo, namespace: str, kubeconfig: Path, api_client: client.ApiClient) -> None:
    env_file = _synced(tmp_path, repo, namespace, kubeconfig, ["keep-a", "keep-b", "dropped"])
    client.CoreV1Api(api_client).delete_namespaced_config_map(f"reconciler-{namespace}", SYSTEM_NAMESPACE)
    write_stack(repo, "app", [configmap(n, namespace, {"n": n}) for n in ["keep-a", "keep-b"]])
    repo.commit("drop one")

    result = _engine(tmp_path, env_file, kubeconfig, "second").sync()

    assert result.ok, result
    assert _live(api_client, namespace) == {"keep-a", "keep-b"}
    assert "rebuilt from 3 labelled live object(s)" in result.stacks[0].reason
    record = _engine(tmp_path, env_file, kubeconfig, "third").status().stacks[0]
    assert record.commit == result.commit.sha  # written back: the inventory exists again


def test_after_the_inventory_is_deleted_under_a_running_engine_its_next_pass_rebuilds_it_and_prunes_what_git_dropped(
        tmp_path: Path, repo, namespace: str, kubeconfig: Path, api_client: client.ApiClient) -> None:
    """The daemon's engine lives on and has read the environment's hash key once; the inventory deleted under
    it is rebuilt all the same (the key Secret still says the environment has synced before)."""
    write_stack(repo, "app", [configmap(n, namespace, {"n": n}) for n in ["keep", "dropped"]])
    repo.commit("two configmaps")
    engine = _engine(tmp_path, make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]),
                     kubeconfig, "daemon")
    assert engine.sync().ok
    client.CoreV1Api(api_client).delete_namespaced_config_map(f"reconciler-{namespace}", SYSTEM_NAMESPACE)
    write_stack(repo, "app", [configmap("keep", namespace, {"n": "keep"})])
    repo.commit("drop one")

    result = engine.sync()

    assert result.ok, result
    assert "rebuilt from 2 labelled live object(s)" in result.stacks[0].reason
    assert _live(api_client, namespace) == {"keep"}


def test_after_the_hash_key_secret_is_deleted_a_detect_only_environment_reports_a_hand_edit_and_never_reverts_it(
        tmp_path: Path, repo, namespace: str, kubeconfig: Path, api_client: client.ApiClient) -> None:
    """Under a new key every recorded hash looked like a Git change: a restarted reconciler reverted the edit
    that `correctDrift: false` promises to leave, without a word."""
    write_stack(repo, "app", [configmap("edited", namespace, {"n": "git"})])
    repo.commit("one configmap")
    env_file = make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}], correctDrift=False)
    assert _engine(tmp_path, env_file, kubeconfig, "first").sync().ok
    core = client.CoreV1Api(api_client)
    core.delete_namespaced_secret(f"reconciler-{namespace}-key", SYSTEM_NAMESPACE)
    core.patch_namespaced_config_map("edited", namespace, {"data": {"n": "by hand"}})

    result = _engine(tmp_path, env_file, kubeconfig, "second").sync()

    assert result.ok, result
    assert result.stacks[0].drifted == 1, result.stacks[0]
    assert any("hash key Secret" in notice for notice in result.notices), result.notices
    assert _engine(tmp_path, env_file, kubeconfig, "third").sync().stacks[0].drifted == 1  # the records hold
    assert core.read_namespaced_config_map("edited", namespace).data == {"n": "by hand"}


def test_a_corrupted_inventory_prunes_nothing_git_still_wants_and_is_written_anew(
        tmp_path: Path, repo, namespace: str, kubeconfig: Path, api_client: client.ApiClient) -> None:
    env_file = _synced(tmp_path, repo, namespace, kubeconfig, ["a", "b", "c"])
    client.CoreV1Api(api_client).replace_namespaced_config_map(
        f"reconciler-{namespace}", SYSTEM_NAMESPACE,
        {"metadata": {"name": f"reconciler-{namespace}"},
         "data": {"stack.app.json": '{"objects": ["not", "a", "map"', "drift.json": "]["}})

    result = _engine(tmp_path, env_file, kubeconfig, "second").sync()

    assert result.ok, result
    assert _live(api_client, namespace) == {"a", "b", "c"}
    assert [c.action.value for c in result.stacks[0].changes] == ["unchanged"] * 3
    again = _engine(tmp_path, env_file, kubeconfig, "third").sync()
    assert again.ok and "rebuilt" not in again.stacks[0].reason  # the record is readable again


def test_an_object_labelled_by_another_stack_is_not_taken_into_a_rebuilt_inventory(
        tmp_path: Path, repo, namespace: str, kubeconfig: Path, api_client: client.ApiClient) -> None:
    env_file = _synced(tmp_path, repo, namespace, kubeconfig, ["mine"])
    client.CoreV1Api(api_client).create_namespaced_config_map(namespace, {
        "metadata": {"name": "theirs", "labels": {"reconciler.healthflow.io/owner": f"{namespace}-other.app"}}})
    client.CoreV1Api(api_client).delete_namespaced_config_map(f"reconciler-{namespace}", SYSTEM_NAMESPACE)

    result = _engine(tmp_path, env_file, kubeconfig, "second").sync()

    assert result.ok, result
    assert _live(api_client, namespace) == {"mine", "theirs"}
