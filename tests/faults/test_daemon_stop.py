"""The daemon stopped in the middle of applying a stack: SIGKILL or SIGTERM between objects. The next
start converges to Git and nothing applied before the stop is lost or re-created."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client

from daemon_support import GitRepo, configmap_stack, free_port, start_daemon, write_env
from helpers import wait_for, watch_events

pytestmark = [pytest.mark.cluster, pytest.mark.long]

OBJECTS = 400


@pytest.fixture()
def big_env(tmp_path: Path, namespace: str) -> Path:
    repo = GitRepo.create(tmp_path / "git")
    repo.write("stacks/app/kustomization.yaml", yaml.safe_dump({"resources": ["objects.yaml"]}))
    repo.write("stacks/app/objects.yaml", yaml.safe_dump_all(
        [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:03d}", "namespace": namespace},
          "data": {"v": str(i)}} for i in range(OBJECTS)]))
    repo.commit_and_push(f"{OBJECTS} objects")
    return write_env(tmp_path / "env.yaml", repo, [("app", [])])


def _uids(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    return {cm.metadata.name: cm.metadata.uid for cm in core.list_namespaced_config_map(namespace).items
            if cm.metadata.name.startswith("cm-")}


def _wait_for_creations(core: client.CoreV1Api, namespace: str, count: int) -> None:
    """Return as soon as the watch has seen `count` of our objects created: the apply is under way."""
    seen = 0
    for event in watch_events(core.list_namespaced_config_map, namespace, timeout_s=120):
        if event["type"] == "ADDED" and event["object"]["metadata"]["name"].startswith("cm-"):
            seen += 1
            if seen >= count:
                return
    pytest.fail(f"the pass created fewer than {count} objects in 120 s")


def _converged(port: int) -> bool:
    try:
        status = requests.get(f"http://127.0.0.1:{port}/api/status", timeout=2).json()
    except requests.RequestException:
        return False
    [stack] = status["envs"][0]["stacks"]
    return stack["state"] in ("applied", "unchanged") and stack["healthy"] is not False


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_daemon_stopped_mid_apply_converges_on_the_next_start_and_loses_nothing(
        big_env: Path, tmp_path: Path, namespace: str, api_client: client.ApiClient, kubeconfig: Path,
        stop: signal.Signals) -> None:
    core = client.CoreV1Api(api_client)
    port = free_port()
    first = start_daemon(tmp_path, big_env, kubeconfig, port, "first")
    try:
        _wait_for_creations(core, namespace, 50)
        first.send_signal(stop)
        code = first.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
    before = _uids(core, namespace)
    assert 0 < len(before) < OBJECTS, "the stop must land in the middle of the apply"
    if stop == signal.SIGTERM:
        assert code == 0  # stopped between objects, cleanly

    second = start_daemon(tmp_path, big_env, kubeconfig, port, "second")
    try:
        wait_for(lambda: _converged(port) and len(_uids(core, namespace)) == OBJECTS, timeout_s=180,
                 what="the restarted daemon to converge")
    finally:
        second.terminate()
        second.wait(60)
    after = _uids(core, namespace)
    assert {name: after[name] for name in before} == before  # nothing applied before the stop was re-created


_NEVER_SCHEDULED = yaml.safe_dump({
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "stuck"}}, "template": {
        "metadata": {"labels": {"app": "stuck"}},
        "spec": {"nodeSelector": {"no-such-node": "true"}, "containers": [{"name": "app", "image": "app:1"}]}}}})


def _record(core: client.CoreV1Api, env: str, stack: str) -> dict:
    try:
        data = core.read_namespaced_config_map(f"reconciler-{env}", "healthflow-system").data or {}
    except client.ApiException:
        return {}
    return json.loads(data.get(f"stack.{stack}.json") or "{}")


def test_a_daemon_killed_while_a_stack_record_waits_records_the_stack_as_applied_on_the_next_start(
        tmp_path: Path, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    """A record that owns nothing new waits for a later write (`inventory.RECORD_DELAY_S`). Killed before
    it is written, the next start finds the stack live as Git wants it and records it applied there."""
    core = client.CoreV1Api(api_client)
    repo = GitRepo.create(tmp_path / "git")
    configmap_stack(repo, "a", namespace, {"v": "1"})
    configmap_stack(repo, "b", namespace, {"v": "1"})
    first_sha = repo.commit_and_push("two stacks")
    env_file = write_env(tmp_path / "env.yaml", repo, [("a", []), ("b", ["a"])], interval="2s",
                         sync={"healthTimeout": "10s"})  # the record waits until b's health wait ends the pass
    env = yaml.safe_load(env_file.read_text())["name"]
    port = free_port()
    first = start_daemon(tmp_path, env_file, kubeconfig, port, "first")
    try:
        wait_for(lambda: _record(core, env, "b").get("commit") == first_sha, what="the first sync's records")
        configmap_stack(repo, "a", namespace, {"v": "2"})
        configmap_stack(repo, "b", namespace, {"v": "2"}, extra=_NEVER_SCHEDULED)  # b then waits for health
        second_sha = repo.commit_and_push("a changes; b gains a Deployment that never becomes ready")
        wait_for(lambda: core.read_namespaced_config_map("a-settings", namespace).data == {"v": "2"}
                 and client.AppsV1Api(api_client).list_namespaced_deployment(namespace).items,
                 what="stack a applied and stack b waiting for health")
        waiting = _record(core, env, "a")
        first.kill()
        first.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
    assert waiting["commit"] == first_sha  # a's record at the new commit was waiting when the daemon died

    second = start_daemon(tmp_path, env_file, kubeconfig, port, "second")
    try:
        wait_for(lambda: _record(core, env, "a").get("commit") == second_sha, timeout_s=120,
                 what="the restarted daemon to record stack a")
    finally:
        second.terminate()
        second.wait(60)
    newest = _record(core, env, "a")["history"][0]
    assert (newest["commit"], newest["result"]) == (second_sha, "applied")
    assert core.read_namespaced_config_map("a-settings", namespace).data == {"v": "2"}
