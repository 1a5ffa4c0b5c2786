"""Operating a running daemon: suspend and resume through the API (the suspension outlives the daemon),
and a mass prune let through once by the API's allowMassPrune."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from daemon_support import API_TOKEN, GitRepo, configmap_stack, running_daemon, write_env
from helpers import wait_for
from reconciler.config import load_environment
from reconciler.daemon.service import DaemonSettings, default_engine_factory

pytestmark = pytest.mark.cluster
HEADERS = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture()
def factory(tmp_path: Path, kubeconfig: Path) -> Callable[[Any], Any]:
    return default_engine_factory(tmp_path / "cache", kubeconfig)


def _value(api_client: client.ApiClient, namespace: str, name: str = "app-settings") -> str | None:
    try:
        return (client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace).data or {}).get("value")
    except ApiException:
        return None


def _finished(base: str, run_id: str) -> dict | None:
    run = requests.get(f"{base}/api/runs/{run_id}", headers=HEADERS, timeout=5).json()
    return run if run.get("done") else None


def _post(base: str, path: str, body: dict) -> dict:
    response = requests.post(f"{base}{path}", json=body, headers=HEADERS, timeout=10)
    assert response.status_code == 202, response.text
    return wait_for(lambda: _finished(base, response.json()["run_id"]), timeout_s=120, what=f"{path} run")


def test_a_suspension_through_the_api_holds_across_a_daemon_restart_until_resumed(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, factory: Any) -> None:
    env = load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])]))
    settings = DaemonSettings(poll=False)
    with running_daemon([env], factory, settings=settings) as d:
        wait_for(lambda: _value(api_client, namespace) == "v1", timeout_s=120, what="v1 at startup")
        _post(d.base, "/api/suspend", {"env": env.name, "reason": "incident 7", "by": "oncall"})
    configmap_stack(repo, "app", namespace, {"value": "v2"})
    repo.commit_and_push("v2 while suspended")
    with running_daemon([env], factory, settings=settings) as d:
        wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1) and d.daemon.states[env.name].last_result,
                 timeout_s=120, what="the restarted daemon's first pass")
        status = requests.get(f"{d.base}/api/status", headers=HEADERS, timeout=5).json()
        [stack] = status["envs"][0]["stacks"]
        assert stack["state"] == "suspended" and "oncall" in stack["reason"] and "incident 7" in stack["reason"]
        assert _value(api_client, namespace) == "v1"
        _post(d.base, "/api/resume", {"env": env.name})
        wait_for(lambda: _value(api_client, namespace) == "v2", timeout_s=120, what="v2 applied after resume")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler", *args, "--token", API_TOKEN], capture_output=True,
                          text=True, timeout=180)


def test_the_clis_resume_with_remote_has_the_daemon_reconcile_at_once(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, factory: Any) -> None:
    """Done locally, a resume waits for the daemon's next interval; `flux resume` reconciles at once."""
    env = load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])]))
    with running_daemon([env], factory, settings=DaemonSettings(poll=False)) as d:
        wait_for(lambda: _value(api_client, namespace) == "v1", timeout_s=120, what="v1 at startup")
        suspended = _cli("suspend", "-e", env.name, "--reason", "incident 8", "--by", "oncall", "--remote", d.base)
        assert suspended.returncode == 0 and "succeeded" in suspended.stdout, suspended.stdout + suspended.stderr
        configmap_stack(repo, "app", namespace, {"value": "v2"})
        repo.commit_and_push("v2 while suspended")
        _post(d.base, "/api/sync", {"env": env.name})
        assert _value(api_client, namespace) == "v1"

        resumed = _cli("resume", "-e", env.name, "--remote", d.base)

        assert resumed.returncode == 0 and "resumed environment" in resumed.stdout, resumed.stdout + resumed.stderr
        wait_for(lambda: _value(api_client, namespace) == "v2", timeout_s=120, what="v2 applied after resume")


def _extras(count: int) -> str:
    return yaml.safe_dump_all([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"extra-{i}"},
                                "data": {"value": "x"}} for i in range(count)])


def _objects_shown(base: str) -> int:
    [stack] = requests.get(f"{base}/api/status", headers=HEADERS, timeout=5).json()["envs"][0]["stacks"]
    return stack["objects"]


def test_the_status_counts_a_stacks_objects_without_what_it_pruned_and_keeps_the_count_through_settled_passes(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, factory: Any) -> None:
    """It counted the pass's changes: a pass that pruned one of seven showed 7, and a pass that found the
    stack settled (the live cache vouched for it, nothing planned) showed 0."""
    configmap_stack(repo, "app", namespace, {"value": "v1"}, extra=_extras(6))
    repo.commit_and_push("seven objects")
    env = load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])]))
    with running_daemon([env], factory, settings=DaemonSettings(poll=False)) as d:
        wait_for(lambda: _value(api_client, namespace, "extra-5") == "x", timeout_s=120, what="seven objects")
        configmap_stack(repo, "app", namespace, {"value": "v1"}, extra=_extras(5))
        repo.commit_and_push("one removed")

        _post(d.base, "/api/sync", {"env": env.name})
        assert _value(api_client, namespace, "extra-5") is None
        pruned_pass = _objects_shown(d.base)
        wait_for(lambda: d.daemon.engines[env.name].live.wait_synced(1), timeout_s=30, what="the watches to sync")
        _post(d.base, "/api/sync", {"env": env.name})  # unchanged and clean: the next pass may find it settled
        settled = _post(d.base, "/api/sync", {"env": env.name})
        settled_pass = _objects_shown(d.base)

    assert pruned_pass == 6
    assert settled["result"]["stacks"][0]["changes"] == [], "the second pass found the stack settled"
    assert settled_pass == 6


def test_the_apis_allow_mass_prune_lets_one_pass_through(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, factory: Any) -> None:
    extra = yaml.safe_dump_all([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"extra-{i}"},
                                 "data": {"value": "x"}} for i in range(6)])
    configmap_stack(repo, "app", namespace, {"value": "v1"}, extra=extra)
    repo.commit_and_push("seven objects")
    env = load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])]))
    with running_daemon([env], factory, settings=DaemonSettings(poll=False)) as d:
        wait_for(lambda: _value(api_client, namespace, "extra-5") == "x", timeout_s=120, what="seven objects")
        configmap_stack(repo, "app", namespace, {"value": "v1"})
        repo.commit_and_push("six of them removed")
        refused = _post(d.base, "/api/sync", {"env": env.name})
        assert _value(api_client, namespace, "extra-5") == "x", refused
        _post(d.base, "/api/sync", {"env": env.name, "allowMassPrune": True})
        assert _value(api_client, namespace, "extra-5") is None and _value(api_client, namespace) == "v1"


@pytest.mark.long
def test_a_change_held_by_a_deny_window_lands_when_the_window_ends_not_an_interval_later(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, factory: Any) -> None:
    """argo-cd #21692: auto-sync did not fire when a deny window ended. Here the poll interval is an hour:
    only the window's own opening can apply the held commit within the test's minute."""
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    start = now.replace(second=0, microsecond=0)
    ends_in_s = 20
    window = {"kind": "deny", "schedule": f"{start.minute} {start.hour} * * *",
              "duration": f"{int((now - start).total_seconds()) + ends_in_s}s"}
    path = write_env(tmp_path / "env.yaml", repo, [("app", [])], interval="1h")
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "syncWindows": [window]}))
    env = load_environment(path)
    with running_daemon([env], factory, settings=DaemonSettings(jitter_s=0)) as d:
        first = wait_for(lambda: d.daemon.states[env.name].last_result, timeout_s=60, what="the startup pass")
        assert [s.state.value for s in first.stacks] == ["held"] and _value(api_client, namespace) is None
        assert first.held_until is not None
        wait_for(lambda: _value(api_client, namespace) == "v1", timeout_s=ends_in_s + 40,
                 what="the held commit applied when the window ended")
        landed = datetime.now(timezone.utc)
    assert landed >= first.held_until
