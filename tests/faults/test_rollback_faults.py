"""The daemon killed in the middle of an automatic rollback: the pin was written before the rollback
applied anything, so the next start finishes the rollback and nothing is left half-way."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client

from daemon_support import GitRepo, free_port, git, start_daemon
from helpers import wait_for, watch_events

pytestmark = [pytest.mark.cluster, pytest.mark.long]

OBJECTS = 200


def _write(repo: GitRepo, namespace: str, version: str, schedulable: bool) -> None:
    """A Deployment and OBJECTS ConfigMaps, all carrying `version`; unschedulable, the Deployment never becomes available."""
    pod: dict = {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}
    if not schedulable:
        pod["nodeSelector"] = {"faults.test/no-such-node": "true"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace,
                                                                              "labels": {"version": version}},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod}}}
    configmaps = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:03d}", "namespace": namespace},
                   "data": {"version": version}} for i in range(OBJECTS)]
    repo.write("stacks/app/kustomization.yaml", yaml.safe_dump({"resources": ["objects.yaml"]}))
    repo.write("stacks/app/objects.yaml", yaml.safe_dump_all([deployment, *configmaps]))


def _versions(core: client.CoreV1Api, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cm in core.list_namespaced_config_map(namespace).items:
        if cm.metadata.name.startswith("cm-"):
            counts[cm.data["version"]] = counts.get(cm.data["version"], 0) + 1
    return counts


def _wait_for_rollback_under_way(core: client.CoreV1Api, namespace: str, count: int) -> None:
    """Return once `count` ConfigMaps went from v2 back to v1: the rollback is applying."""
    seen = 0
    for event in watch_events(core.list_namespaced_config_map, namespace, timeout_s=240):
        obj = event["object"]
        if event["type"] == "MODIFIED" and obj["metadata"]["name"].startswith("cm-") \
                and obj.get("data", {}).get("version") == "v1":
            seen += 1
            if seen >= count:
                return
    pytest.fail(f"fewer than {count} ConfigMaps were rolled back in 240 s")


def _synced_then_bad(tmp_path: Path, namespace: str, kubeconfig: Path,
                     health_timeout: str) -> tuple[Path, GitRepo, str, str]:
    """An autoRollback environment synced at v1 by the CLI, then a pushed v2 whose Deployment never becomes
    available: (environment file, repository, good commit, bad commit)."""
    repo = GitRepo.create(tmp_path / "git")
    _write(repo, namespace, "v1", schedulable=True)
    good = repo.commit_and_push("v1")
    env_file = tmp_path / "env.yaml"
    env_file.write_text(yaml.safe_dump({
        "name": namespace, "source": {"url": str(repo.bare), "branch": "main"},
        "sync": {"interval": "1h", "healthTimeout": health_timeout, "autoRollback": True}, "policy": {"mode": "off"},
        "stacks": [{"name": "app", "path": "stacks/app"}]}))
    sync = subprocess.run([sys.executable, "-m", "reconciler", "sync", "-e", str(env_file), "--cache-dir",
                           str(tmp_path / "cache"), "--kubeconfig", str(kubeconfig)], capture_output=True, text=True)
    assert sync.returncode == 1, sync.stdout + sync.stderr
    _write(repo, namespace, "v2", schedulable=False)
    return env_file, repo, good, repo.commit_and_push("v2: never available")


def _pinned(port: int) -> dict | None:
    try:
        env = requests.get(f"http://127.0.0.1:{port}/api/status", timeout=2).json()["envs"][0]
    except (requests.RequestException, ValueError, KeyError, IndexError):
        return None
    run = env["last_run"]
    return env if run and run["done"] and env["pins"] else None


def _restart_until_rolled_back(tmp_path: Path, env_file: Path, kubeconfig: Path, core: client.CoreV1Api,
                               namespace: str) -> dict:
    """Start the daemon again; its status once every ConfigMap is back at v1 and the stack is pinned."""
    port = free_port()
    second = start_daemon(tmp_path, env_file, kubeconfig, port, "second")
    try:
        return wait_for(lambda: _pinned(port) and _versions(core, namespace) == {"v1": OBJECTS} and _pinned(port),
                        timeout_s=240, what="the restarted daemon to finish the rollback")
    finally:
        second.terminate()
        second.wait(60)


def test_a_daemon_killed_mid_rollback_finishes_it_on_the_next_start(
        tmp_path: Path, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    core = client.CoreV1Api(api_client)
    env_file, repo, good, bad = _synced_then_bad(tmp_path, namespace, kubeconfig, health_timeout="3s")

    port = free_port()
    first = start_daemon(tmp_path, env_file, kubeconfig, port, "first")
    try:
        _wait_for_rollback_under_way(core, namespace, 20)
        first.send_signal(signal.SIGKILL)
        first.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
    halfway = _versions(core, namespace)
    assert halfway.get("v1") and halfway.get("v2"), f"the kill must land in the middle of the rollback: {halfway}"

    status = _restart_until_rolled_back(tmp_path, env_file, kubeconfig, core, namespace)
    live = client.AppsV1Api(api_client).read_namespaced_deployment("web", namespace)
    assert live.metadata.labels["version"] == "v1" and not live.spec.template.spec.node_selector
    assert status["pins"]["stacks"]["app"]["revision"] == good
    assert status["pins"]["stacks"]["app"]["failed_commit"] == bad
    assert git(repo.work, "rev-parse", "HEAD") == bad  # Git still has the bad commit: only the cluster went back


def _wait_for_deployment_version(apps: client.AppsV1Api, namespace: str, version: str) -> None:
    for event in watch_events(apps.list_namespaced_deployment, namespace, timeout_s=120):
        if event["object"]["metadata"].get("labels", {}).get("version") == version:
            return
    pytest.fail(f"the Deployment never reached {version} in 120 s")


def test_a_daemon_killed_before_the_health_gate_failed_rolls_back_on_the_next_start(
        tmp_path: Path, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    env_file, repo, good, bad = _synced_then_bad(tmp_path, namespace, kubeconfig, health_timeout="8s")

    port = free_port()
    first = start_daemon(tmp_path, env_file, kubeconfig, port, "first")
    try:
        _wait_for_deployment_version(apps, namespace, "v2")  # applied; the 8 s health gate is still waiting
        first.send_signal(signal.SIGKILL)
        first.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
    assert _versions(core, namespace).get("v2"), "the kill must come after the bad commit was applied"

    status = _restart_until_rolled_back(tmp_path, env_file, kubeconfig, core, namespace)
    assert apps.read_namespaced_deployment("web", namespace).metadata.labels["version"] == "v1"
    assert status["pins"]["stacks"]["app"]["revision"] == good
    assert status["pins"]["stacks"]["app"]["failed_commit"] == bad
