"""Drift on watch events: with `sync.interval` at 1 h, an edit in the cluster is reported (and with
correctDrift restored) by the live cache, not by a pass. Against the real API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client

from helpers import wait_for
from reconciler.config import load_environment
from reconciler.daemon.livedrift import FLAP_LIMIT
from reconciler.daemon.leader import LeaseSettings
from reconciler.daemon.service import DaemonSettings, default_engine_factory
from daemon_support import GitRepo, configmap_stack, running_daemon, write_env

pytestmark = pytest.mark.cluster


def _daemon_env(tmp_path: Path, repo: GitRepo, correct_drift: bool) -> Any:
    return load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])], interval="1h",
                                      correct_drift=correct_drift))


def _settle(d: Any, env: Any) -> int:
    """Wait for the startup pass and its drift check; the number of passes so far."""
    wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1) and d.daemon.states[env.name].last_drift,
             timeout_s=120, what="the startup pass and its drift check")
    wait_for(lambda: d.daemon.engines[env.name].live.wait_synced(1), timeout_s=30, what="the watches to sync")
    return d.daemon.workers[env.name].passes_started


def _drifted(d: Any, env: Any) -> list[dict]:
    report = requests.get(f"{d.base}/api/drift", params={"env": env.name}, timeout=5).json()["report"] or {}
    return report.get("items", [])


def _edit(api_client: client.ApiClient, namespace: str, value: str) -> None:
    client.CoreV1Api(api_client).patch_namespaced_config_map("app-settings", namespace, {"data": {"value": value}},
                                                            field_manager="someone")


def _value(api_client: client.ApiClient, namespace: str) -> str:
    return client.CoreV1Api(api_client).read_namespaced_config_map("app-settings", namespace).data["value"]


def test_an_edit_in_the_cluster_is_reported_on_its_watch_event_without_a_pass(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    env = _daemon_env(tmp_path, repo, correct_drift=False)
    with running_daemon([env], default_engine_factory(tmp_path / "cache", kubeconfig)) as d:
        passes = _settle(d, env)
        assert _drifted(d, env) == []

        _edit(api_client, namespace, "edited-by-hand")

        [item] = wait_for(lambda: _drifted(d, env), timeout_s=30, what="the drift report of the edit")
        assert item["kind"] == "modified" and item["fields"] == [
            {"path": "data.value", "desired": "v1", "live": "edited-by-hand"}]
        assert d.daemon.workers[env.name].passes_started == passes  # no pass found it: the watch did
        assert any(a.kind.value == "drift_detected" for a in d.daemon.notifier.history)
        metrics = requests.get(f"{d.base}/metrics", timeout=5).text
        assert "reconciler_drift_detection_seconds_count" in metrics and "reconciler_cache_objects" in metrics
        assert _value(api_client, namespace) == "edited-by-hand"  # detect-only: never reverted


def test_with_correct_drift_an_edit_is_restored_on_its_watch_event_without_a_pass(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    env = _daemon_env(tmp_path, repo, correct_drift=True)
    with running_daemon([env], default_engine_factory(tmp_path / "cache", kubeconfig)) as d:
        passes = _settle(d, env)

        _edit(api_client, namespace, "edited-by-hand")

        wait_for(lambda: _value(api_client, namespace) == "v1", timeout_s=30, what="the edit to be reverted")
        wait_for(lambda: _drifted(d, env) == [], timeout_s=30, what="the drift report to clear")
        assert d.daemon.workers[env.name].passes_started == passes


def test_environments_in_their_own_namespaces_share_one_watch_and_each_restores_only_its_own_edit(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    second_namespace = f"{namespace[:50]}-b"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": second_namespace,
                                                                "labels": {"healthflow.io/test": "true"}}})
    configmap_stack(repo, "other", second_namespace, {"value": "v1"})
    repo.commit_and_push("a second stack in its own namespace")
    first = _daemon_env(tmp_path, repo, correct_drift=True)
    second = load_environment(write_env(tmp_path / "second.yaml", repo, [("other", [])], correct_drift=True))
    try:
        with running_daemon([first, second], default_engine_factory(tmp_path / "cache", kubeconfig)) as d:
            for env in (first, second):
                _settle(d, env)
            watches = [w.watch for env in (first, second) for w in d.daemon.engines[env.name].live.watches.values()]
            assert len(watches) == 2 and watches[0] is watches[1]  # one ConfigMap watch for both namespaces
            passes = d.daemon.workers[second.name].passes_started

            client.CoreV1Api(api_client).patch_namespaced_config_map(
                "other-settings", second_namespace, {"data": {"value": "edited-by-hand"}}, field_manager="someone")

            wait_for(lambda: client.CoreV1Api(api_client).read_namespaced_config_map(
                "other-settings", second_namespace).data["value"] == "v1", timeout_s=30, what="the edit reverted")
            assert d.daemon.workers[second.name].passes_started == passes
            assert _value(api_client, namespace) == "v1"
    finally:
        client.CoreV1Api(api_client).delete_namespace(second_namespace)


def test_an_object_another_writer_keeps_changing_is_reported_as_flapping_instead_of_a_loop(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    env = _daemon_env(tmp_path, repo, correct_drift=True)
    with running_daemon([env], default_engine_factory(tmp_path / "cache", kubeconfig)) as d:
        _settle(d, env)
        for round_ in range(FLAP_LIMIT):
            _edit(api_client, namespace, f"fight-{round_}")
            wait_for(lambda: _value(api_client, namespace) == "v1", timeout_s=30, what=f"correction {round_ + 1}")

        _edit(api_client, namespace, "fight-last")

        wait_for(lambda: any("correction paused" in a.title for a in d.daemon.notifier.history), timeout_s=30,
                 what="the flapping alert")
        assert _value(api_client, namespace) == "fight-last"
        assert _drifted(d, env)[0]["fields"][0]["live"] == "fight-last"


NEVER_AVAILABLE = """apiVersion: apps/v1
kind: Deployment
metadata: {name: never}
spec:
  replicas: 1
  selector: {matchLabels: {app: never}}
  template:
    metadata: {labels: {app: never}}
    spec:
      nodeSelector: {healthflow.io/no-such-node: "true"}
      containers: [{name: main, image: registry.k8s.io/pause:3.10}]
"""


def test_a_failed_commit_is_never_half_reverted_by_a_live_correction(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    env_file = write_env(tmp_path / "env.yaml", repo, [("app", [])], interval="1h", correct_drift=True)
    env_file.write_text(env_file.read_text().replace("healthTimeout: 60s", "healthTimeout: 3s"))
    env = load_environment(env_file)
    with running_daemon([env], default_engine_factory(tmp_path / "cache", kubeconfig)) as d:
        _settle(d, env)
        configmap_stack(repo, "app", namespace, {"value": "v2"}, extra=NEVER_AVAILABLE)
        bad = repo.commit_and_push("B: v2 and a Deployment that never becomes available")
        run = d.manual_pass(env.name, "the pass of commit B", timeout_s=120)
        assert run.state.value == "failed" and _value(api_client, namespace) == "v2"
        checked = _live_checks(d, env)

        client.CoreV1Api(api_client).patch_namespaced_config_map(
            "app-settings", namespace, {"metadata": {"labels": {"team": "payments"}}}, field_manager="someone")

        wait_for(lambda: _live_checks(d, env) > checked, timeout_s=30, what="the live drift check of the label event")
        assert _value(api_client, namespace) == "v2"  # commit B's value stays: nobody asked for commit A's
        [stack] = d.daemon.engines[env.name].status().stacks
        assert (stack.state, stack.failed_commit) == ("failed", bad)  # status names the failed commit as live too


def _live_checks(d: Any, env: Any) -> float:
    """How many watch events the live drift checker has judged for `env` (its latency histogram's count)."""
    for metric in d.daemon.metrics.drift_latency.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and env.name in sample.labels.values():
                return sample.value
    return 0.0


def _batches(d: Any, env: Any, outcome: str) -> float:
    return d.daemon.metrics.registry.get_sample_value(
        "reconciler_live_event_batches_total", {"env": env.name, "outcome": outcome}) or 0.0


def test_a_replica_that_no_longer_leads_an_environment_leaves_its_watch_events_to_the_leader(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    """Its cache still follows the environment, and most of what it sees is the leader's pass writing."""
    env = _daemon_env(tmp_path, repo, correct_drift=True)
    lease = LeaseSettings(namespace=namespace, lease_duration_s=60.0, renew_deadline_s=40.0, retry_period_s=0.5)
    settings = DaemonSettings(lease=lease, identity="replica-0")
    with running_daemon([env], default_engine_factory(tmp_path / "cache", kubeconfig), settings=settings) as d:
        _settle(d, env)
        d.daemon.leadership.stop()  # gives the environment up, as when a replica joins and takes its share
        assert not d.daemon.may_apply(env.name)
        judged = _batches(d, env, "judged")

        _edit(api_client, namespace, "edited-by-hand")

        wait_for(lambda: _batches(d, env, "not_leader"), timeout_s=30, what="the edit's event to be left alone")
        assert _batches(d, env, "judged") == judged and _drifted(d, env) == []
        assert _value(api_client, namespace) == "edited-by-hand"
