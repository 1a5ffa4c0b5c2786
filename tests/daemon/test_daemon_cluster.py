"""The daemon against the real API server: pushes applied through webhooks and polling, manual
sync, alerts as Kubernetes Events, metrics after real passes, Lease-based leader election and two
daemon processes sharing one environment.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
from kubernetes import client
from kubernetes.client.rest import ApiException
from prometheus_client.parser import text_string_to_metric_families

from helpers import wait_for, watch_events
from reconciler.config import load_environment
from reconciler.daemon.service import DaemonSettings, default_engine_factory
from reconciler.daemon.members import Membership
from reconciler.daemon.leader import ElectionLoop, LeaseElector, LeaseSettings, list_leases, member_lease_name
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import Alert, AlertKind, KubernetesEventSink, Notifier
from reconciler.retrying import RetryPolicy
from reconciler.daemon.webhooks import github_signature
from reconciler.pipeline.context import PassOptions
from reconciler.pipeline.fetchmemo import Moment
from daemon_support import (
    API_TOKEN,
    GITHUB_SECRET,
    GatedEngine,
    GitRepo,
    alert_sink,
    configmap_stack,
    free_port,
    github_push,
    http_receiver,
    received_alerts,
    running_daemon,
    write_env,
)

pytestmark = pytest.mark.cluster
REPO_ROOT = Path(__file__).resolve().parents[2]


def configmap_value(api_client: client.ApiClient, namespace: str, name: str, key: str = "value") -> str | None:
    try:
        return (client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace).data or {}).get(key)
    except ApiException:
        return None


def engine_env(tmp_path: Path, repo: GitRepo, **kwargs: Any) -> Any:
    return load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])], **kwargs))


@pytest.fixture()
def factory(tmp_path: Path, kubeconfig: Path) -> Callable[[Any], Any]:
    return default_engine_factory(tmp_path / "cache", kubeconfig)


def test_environments_on_one_cluster_share_one_api_client_and_its_connection_pool(
        tmp_path: Path, repo: GitRepo, factory: Callable[[Any], Any], api_client: client.ApiClient) -> None:
    first = factory(load_environment(write_env(tmp_path / "a.yaml", repo, [("app", [])])))
    second = factory(load_environment(write_env(tmp_path / "b.yaml", repo, [("app", [])])))

    assert first.api_client is second.api_client
    assert first.cluster is not second.cluster  # each still counts its own requests
    assert client.VersionApi(second.api_client).get_code().major == "1"


def test_environments_following_one_repository_fetch_and_export_each_commit_once(
        tmp_path: Path, repo: GitRepo, factory: Callable[[Any], Any]) -> None:
    first = factory(load_environment(write_env(tmp_path / "a.yaml", repo, [("app", [])])))
    second = factory(load_environment(write_env(tmp_path / "b.yaml", repo, [("app", [])])))

    commit = first.source.fetch()
    assert second.source.fetch() == commit  # the mirror already has it: no second fetch

    assert first.source.export(commit.sha) == second.source.export(commit.sha)
    assert [p.name for p in first.source.trees_dir.iterdir() if not p.name.startswith(".")] == [commit.sha]
    assert first.cache_dir != second.cache_dir  # renders and keys stay each environment's own


def test_the_drift_check_after_a_pass_asks_the_remote_nothing_the_pass_did_not(
        tmp_path: Path, repo: GitRepo, namespace: str, factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """It wants the head from the pass's start, which the pass's own look at the remote answers: a `git
    ls-remote` per environment after each pass of a fleet push, one after another under the mirror's lock."""
    trace = tmp_path / "git-trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    env = engine_env(tmp_path, repo)
    with running_daemon([env], factory, settings=DaemonSettings(poll=False)) as d:
        wait_for(lambda: d.daemon.states[env.name].last_drift is not None, timeout_s=120,
                 what="the startup pass and the drift check after it")

    commands = [line for line in trace.read_text().splitlines() if '"event":"cmd_name"' in line]
    assert any('"fetch"' in line or '"clone"' in line for line in commands)  # the pass: a new mirror, fetched
    assert not [line for line in commands if '"ls-remote"' in line]  # the drift check: no look of its own


def test_passes_a_push_asked_for_before_a_look_at_the_remote_began_share_that_look(
        tmp_path: Path, repo: GitRepo, namespace: str, factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon's pass wants the branch head as of its run's trigger: the passes of environments one push
    fanned out share the first look that began after it, instead of each looking when it starts."""
    configmap_stack(repo, "other", namespace, {"value": "v1"})
    repo.commit_and_push("a second stack")
    engines = [factory(load_environment(write_env(tmp_path / f"{stack}.yaml", repo, [(stack, [])])))
               for stack in ("app", "other")]
    engines[0].source.fetch()  # the mirror exists: a pass asks the remote with `git ls-remote`
    configmap_stack(repo, "app", namespace, {"value": "v2"})
    repo.commit_and_push("v2")
    trace = tmp_path / "git-trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    pushed = Moment.now()

    results = [engine.sync(options=PassOptions(asked=pushed)) for engine in engines]

    assert [r.ok for r in results] == [True, True]
    assert configmap_value(engines[0].api_client, namespace, "app-settings") == "v2"
    looks = [line for line in trace.read_text().splitlines() if '"event":"cmd_name"' in line and '"ls-remote"' in line]
    assert len(looks) == 1


def _signed_push(base: str, repo: GitRepo, sha: str, secret: str = GITHUB_SECRET) -> requests.Response:
    body = github_push(repo, sha)
    return requests.post(f"{base}/hooks/github", data=body, headers={
        "X-GitHub-Event": "push", "X-Hub-Signature-256": github_signature(secret, body)})


# ---- Git push -> cluster ---------------------------------------------------------------------------


def test_a_signed_push_webhook_applies_the_new_commit(tmp_path: Path, repo: GitRepo, namespace: str,
                                                      api_client: client.ApiClient, factory: Any) -> None:
    env = engine_env(tmp_path, repo)
    with running_daemon([env], factory, settings=DaemonSettings(poll=False)) as d:
        wait_for(lambda: configmap_value(api_client, namespace, "app-settings") == "v1", timeout_s=120,
                 what="the first commit applied at startup")
        wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1), timeout_s=120, what="startup pass done")
        configmap_stack(repo, "app", namespace, {"value": "v2"})
        sha = repo.commit_and_push("v2")
        assert _signed_push(d.base, repo, sha).status_code == 202
        wait_for(lambda: configmap_value(api_client, namespace, "app-settings") == "v2", timeout_s=120,
                 what="v2 applied")
        run = wait_for(lambda: (run := d.daemon.states[env.name].last_run) and run.result.commit.sha == sha and run,
                       timeout_s=30, what="the daemon to record the pass of the pushed commit")
        assert run.sources == ["webhook:github"]


def test_a_wrongly_signed_webhook_changes_nothing(tmp_path: Path, repo: GitRepo, namespace: str,
                                                  api_client: client.ApiClient, factory: Any) -> None:
    env = engine_env(tmp_path, repo)
    with running_daemon([env], factory, settings=DaemonSettings(poll=False)) as d:
        wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1) and d.daemon.states[env.name].last_run,
                 timeout_s=120, what="startup pass done")
        runs_before = len(d.daemon.runbook.recent(100))
        configmap_stack(repo, "app", namespace, {"value": "v2"})
        sha = repo.commit_and_push("v2")
        assert _signed_push(d.base, repo, sha, secret="not-the-secret").status_code == 401
        assert len(d.daemon.runbook.recent(100)) == runs_before
        assert d.daemon.workers[env.name].wait_idle(1.0)
    assert configmap_value(api_client, namespace, "app-settings") == "v1"


def test_with_polling_only_a_new_commit_is_applied_by_the_next_poll(tmp_path: Path, repo: GitRepo,
                                                                       namespace: str, api_client: client.ApiClient,
                                                                       factory: Any) -> None:
    interval = 5.0
    env = engine_env(tmp_path, repo, interval=f"{interval:.0f}s")
    with running_daemon([env], factory, settings=DaemonSettings(jitter_s=0)) as d:
        wait_for(lambda: configmap_value(api_client, namespace, "app-settings") == "v1", timeout_s=120,
                 what="the first commit")
        wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1), timeout_s=120, what="startup pass done")
        configmap_stack(repo, "app", namespace, {"value": "v2"})
        sha = repo.commit_and_push("v2")
        wait_for(lambda: configmap_value(api_client, namespace, "app-settings") == "v2", timeout_s=120,
                 what="v2 applied by polling")
        run = wait_for(lambda: next((r for r in d.daemon.runbook.recent(50)
                                     if r.result and r.result.commit and r.result.commit.sha == sha), None),
                       timeout_s=30, what="the pass of the new commit recorded")
        assert run.sources == ["poll"]  # nothing but the poll found the commit


def test_two_triggers_during_a_real_pass_produce_exactly_one_follow_up(tmp_path: Path, repo: GitRepo,
                                                                       factory: Any) -> None:
    env = engine_env(tmp_path, repo)
    gated: list[GatedEngine] = []

    def gated_factory(e: Any) -> GatedEngine:
        gated.append(GatedEngine(factory(e)))
        return gated[0]

    with running_daemon([env], gated_factory, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        first = d.daemon.trigger(env.name, "manual")
        assert gated[0].entered.acquire(timeout=30)
        follow_ups = {d.daemon.trigger(env.name, "webhook").id, d.daemon.trigger(env.name, "manual").id}
        gated[0].gate.set()
        wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1), timeout_s=120, what="both passes")
    assert len(follow_ups) == 1 and first.id not in follow_ups
    assert len(gated[0].calls) == 2 and gated[0].max_concurrent == 1


def test_manual_sync_runs_and_remote_sync_shows_its_progress(tmp_path: Path, repo: GitRepo, namespace: str,
                                                             api_client: client.ApiClient, factory: Any) -> None:
    from reconciler.cli.remote import remote_sync

    env = engine_env(tmp_path, repo)
    with running_daemon([env], factory, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        assert requests.post(f"{d.base}/api/sync", json={"env": env.name}).status_code == 401
        out = io.StringIO()
        args = type("Args", (), {"remote": d.base, "env": env.name, "stack": None, "token": API_TOKEN,
                                 "remote_timeout": 120})()
        assert remote_sync(args, out) == 0
    printed = out.getvalue()
    print(printed)
    assert "accepted" in printed and "app: applied" in printed and "succeeded" in printed
    assert "[" in printed.splitlines()[1], "progress events are printed while the run goes"
    assert configmap_value(api_client, namespace, "app-settings") == "v1"


def test_metrics_after_a_real_pass_parse_and_show_the_pass(tmp_path: Path, repo: GitRepo, factory: Any) -> None:
    env = engine_env(tmp_path, repo)
    with running_daemon([env], factory, settings=DaemonSettings(poll=False)) as d:
        wait_for(lambda: d.daemon.states[env.name].last_run, timeout_s=120, what="startup pass")
        wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1), timeout_s=120, what="startup pass done")
        text = requests.get(f"{d.base}/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("reconciler_objects_applied_total", (("env", env.name), ("stack", "app")))] >= 1
    assert samples[("reconciler_api_requests_per_pass_count", (("env", env.name),))] == 1
    assert samples[("reconciler_api_requests_per_pass_sum", (("env", env.name),))] > 0
    assert samples[("reconciler_last_success_timestamp_seconds", (("env", env.name),))] > 0
    assert ("reconciler_drift_objects", (("env", env.name), ("stack", "app"))) in samples


# ---- alerts ------------------------------------------------------------------------------------------


def _events(api_client: client.ApiClient, namespace: str, name: str, reason: str) -> list[Any]:
    events = client.CoreV1Api(api_client).list_namespaced_event(namespace).items
    return [e for e in events if e.involved_object.name == name and e.reason == reason]


def test_an_alert_becomes_a_kubernetes_event_on_the_inventory_configmap(api_client: client.ApiClient,
                                                                         namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "inventory"}})
    sink = KubernetesEventSink(lambda env: (api_client, namespace, "inventory"))
    notifier = Notifier([sink], Metrics())
    notifier.publish([Alert(AlertKind.DRIFT_DETECTED, "dev", "", "warning", "dev: 1 drifted", "modified x", "f")], [])
    assert notifier.flush(30)
    notifier.close()
    [event] = wait_for(lambda: _events(api_client, namespace, "inventory", "DriftDetected"), timeout_s=30,
                       what="the Event")
    assert event.type == "Warning" and "1 drifted" in event.message
    assert event.involved_object.uid == core.read_namespaced_config_map("inventory", namespace).metadata.uid


def test_drift_gives_one_webhook_alert_a_reminder_after_the_interval_and_an_event(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, factory: Any) -> None:
    env = engine_env(tmp_path, repo, correct_drift=False)
    reminder_s = 4.0
    with http_receiver() as receiver:
        metrics = Metrics()
        engines: list[Any] = []

        def recording(e: Any) -> Any:
            engines.append(factory(e))
            return engines[-1]

        events = KubernetesEventSink(lambda name: (engines[0].api_client, *engines[0].state_ref()))
        notifier = Notifier([alert_sink(receiver), events], metrics, dedup_window_s=3600,
                            windows={AlertKind.DRIFT_DETECTED: reminder_s}, retry=RetryPolicy(2, 0.1))
        with running_daemon([env], recording, settings=DaemonSettings(poll=False), notifier=notifier) as d:
            wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1) and d.daemon.states[env.name].last_run,
                     timeout_s=120, what="startup pass")
            client.CoreV1Api(api_client).patch_namespaced_config_map(
                "app-settings", namespace, {"data": {"value": "edited-by-hand"}})

            def sync_now() -> None:
                d.manual_pass(env.name, "pass", timeout_s=120)
                wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1), timeout_s=60, what="drift check")
                assert notifier.flush(30)

            sync_now()
            sync_now()  # the same drift again, inside the window: no second alert
            drift = [b for b in received_alerts(receiver) if b["kind"] == "drift_detected"]
            assert [b["reminder"] for b in drift] == [False]
            [key] = [a.key for a in notifier.history if a.kind is AlertKind.DRIFT_DETECTED]
            wait_for(lambda: time.monotonic() - notifier._sent[key].last_at > reminder_s,
                     timeout_s=reminder_s + 5, what="the reminder interval to pass")
            sync_now()
            drift = [b for b in received_alerts(receiver) if b["kind"] == "drift_detected"]
            assert [b["reminder"] for b in drift] == [False, True]
            ns, name = engines[0].state_ref()
            wait_for(lambda: _events(api_client, ns, name, "DriftDetected"), timeout_s=30, what="drift Event")
            report = requests.get(f"{d.base}/api/drift", params={"env": env.name}).json()["report"]
            assert any(item["kind"] == "modified" for item in report["items"])


def _copy_policies(repo: GitRepo) -> None:
    """The project's policy rules (min-replicas: 3 outside dev); the env sets every rule to `warn`."""
    for rule_file in sorted((REPO_ROOT / "policies").glob("*.yaml")):
        repo.write(f"policies/{rule_file.name}", rule_file.read_text())


def _deployment(namespace: str, replicas: int) -> str:
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                       "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                                    {"name": "web", "image": "registry.k8s.io/pause:3.10"}]}}}})


def test_a_policy_violation_gives_one_webhook_alert_and_an_event(tmp_path: Path, repo: GitRepo, namespace: str,
                                                                 api_client: client.ApiClient, factory: Any) -> None:
    _copy_policies(repo)
    configmap_stack(repo, "app", namespace, {"value": "v1"}, extra=_deployment(namespace, replicas=1))
    repo.commit_and_push("one replica only")
    env = engine_env(tmp_path, repo, policy_mode="warn")
    with http_receiver() as receiver:
        engines: list[Any] = []

        def recording(e: Any) -> Any:
            engines.append(factory(e))
            return engines[-1]

        events = KubernetesEventSink(lambda name: (engines[0].api_client, *engines[0].state_ref()))
        notifier = Notifier([alert_sink(receiver), events], Metrics(), retry=RetryPolicy(2, 0.1))
        with running_daemon([env], recording, settings=DaemonSettings(poll=False, initial_pass=False),
                            notifier=notifier) as d:
            for _ in range(2):
                d.manual_pass(env.name, "pass", timeout_s=180)
            assert notifier.flush(30)
            violations = [b for b in received_alerts(receiver) if b["kind"] == "policy_violation"]
            assert len(violations) == 1, receiver.bodies
            assert "min-replicas" in violations[0]["message"]
            ns, name = engines[0].state_ref()
            wait_for(lambda: _events(api_client, ns, name, "PolicyViolation"), timeout_s=30, what="violation Event")


# ---- leader election ---------------------------------------------------------------------------------

FAST_LEASE = dict(lease_duration_s=3.0, renew_deadline_s=2.0, retry_period_s=0.5)


def _electors(api_client: client.ApiClient, namespace: str, n: int = 2) -> list[LeaseElector]:
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    return [LeaseElector(api_client, "reconciler-test", f"replica-{i}", settings) for i in range(n)]


def test_of_two_electors_exactly_one_leads(api_client: client.ApiClient, namespace: str) -> None:
    a, b = _electors(api_client, namespace)
    results = [a.try_acquire_or_renew(), b.try_acquire_or_renew(), a.try_acquire_or_renew(),
               b.try_acquire_or_renew()]
    assert results == [True, False, True, False]
    assert a.is_leader() and not b.is_leader()
    assert a.holder() == "replica-0"


def test_the_other_elector_takes_over_at_once_when_the_leader_releases(api_client: client.ApiClient,
                                                                       namespace: str) -> None:
    a, b = _electors(api_client, namespace)
    assert a.try_acquire_or_renew()
    a.release()
    assert not a.is_leader()
    assert b.try_acquire_or_renew() and b.holder() == "replica-1"


def test_a_leader_that_cannot_renew_stops_leading_before_anyone_else_may_take_over(
        api_client: client.ApiClient, namespace: str) -> None:
    a, b = _electors(api_client, namespace)
    assert a.try_acquire_or_renew()
    acquired_at = time.monotonic()
    wait_for(lambda: not a.is_leader(), timeout_s=5, what="the old leader to stop leading")
    stopped_after = time.monotonic() - acquired_at
    takeover_after = wait_for(lambda: b.try_acquire_or_renew() and time.monotonic() - acquired_at, timeout_s=10,
                              what="the other to take over")
    assert stopped_after <= FAST_LEASE["renew_deadline_s"] + 0.5
    assert takeover_after >= FAST_LEASE["lease_duration_s"] > stopped_after
    assert not a.try_acquire_or_renew()


def test_a_leader_renews_its_lease_with_one_write_and_no_read(api_client: client.ApiClient, namespace: str) -> None:
    a, _ = _electors(api_client, namespace)
    assert a.try_acquire_or_renew()
    a.lease.cluster.reset_counts()

    assert a.try_acquire_or_renew() and a.try_acquire_or_renew()

    assert a.lease.cluster.request_counts() == {"update": 2}


def _one_environment(api_client: client.ApiClient, settings: LeaseSettings, identity: str,
                     on_request: Callable[[str, str], None] = lambda env, payload: None
                     ) -> tuple[LeaseElector, ElectionLoop]:
    """A replica's election for the one environment `env` (Lease `reconciler-env`)."""
    elector = LeaseElector(api_client, "reconciler-env", identity, settings)
    return elector, ElectionLoop({"env": elector}, settings, lambda env, leading: None, on_request)


def test_a_sync_request_annotated_on_the_lease_reaches_the_leader_at_its_next_round(
        api_client: client.ApiClient, namespace: str) -> None:
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    requests_seen: list[tuple[str, str]] = []
    _, leader = _one_environment(api_client, settings, "replica-0",
                                 lambda env, payload: requests_seen.append((env, payload)))
    leader.round()
    other = LeaseElector(api_client, "reconciler-env", "replica-1", settings)

    assert other.request_sync("manual by someone")
    leader.round()

    assert leader.held() == ["env"] and requests_seen == [("env", "manual by someone")]
    leader.round()
    assert requests_seen == [("env", "manual by someone")]  # taken once, though it stays on the Lease
    leader.stop(release=True)


def test_a_second_sync_request_on_the_same_lease_reaches_the_leader_too(
        api_client: client.ApiClient, namespace: str) -> None:
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    requests_seen: list[str] = []
    _, leader = _one_environment(api_client, settings, "replica-0", lambda env, payload: requests_seen.append(payload))
    leader.round()
    other = LeaseElector(api_client, "reconciler-env", "replica-1", settings)

    for payload in ("first", "second"):
        assert other.request_sync(payload)
        leader.round()

    assert requests_seen == ["first", "second"]
    leader.stop(release=True)


def test_a_sync_request_annotated_on_the_lease_wakes_the_leader_instead_of_waiting_for_its_next_round(
        api_client: client.ApiClient, namespace: str) -> None:
    slow_rounds = LeaseSettings(namespace=namespace, lease_duration_s=90.0, renew_deadline_s=60.0, retry_period_s=30.0)
    requests_seen: list[tuple[str, str]] = []
    _, leader = _one_environment(api_client, slow_rounds, "replica-0",
                                 lambda env, payload: requests_seen.append((env, payload)))
    leader.start()
    wait_for(lambda: leader.held() == ["env"], timeout_s=10, what="the first round to claim the environment")
    other = LeaseElector(api_client, "reconciler-env", "replica-1", slow_rounds)

    assert other.request_sync("webhook to replica-1")

    wait_for(lambda: requests_seen, timeout_s=10, what="the request, well before the next round (30 s on)")
    assert requests_seen == [("env", "webhook to replica-1")]
    leader.stop(release=True)


def test_a_sync_request_forwarded_to_the_leader_costs_it_no_request_to_the_api_server(
        api_client: client.ApiClient, namespace: str) -> None:
    """A woken round renewed the heartbeat and rewrote the Lease to clear the request: about two writes per
    environment a push was forwarded for, beside the forwarding annotation itself."""
    slow_rounds = LeaseSettings(namespace=namespace, lease_duration_s=90.0, renew_deadline_s=60.0, retry_period_s=30.0)
    requests_seen: list[str] = []
    elector, leader = _one_environment(api_client, slow_rounds, "replica-0",
                                       lambda env, payload: requests_seen.append(payload))
    leader.start()
    wait_for(lambda: leader.held() == ["env"], timeout_s=10, what="the first round to claim the environment")
    clusters = [elector.lease.cluster, *(beat.lease.cluster for beat in leader.heartbeats)]
    for cluster in clusters:
        cluster.reset_counts()
    other = LeaseElector(api_client, "reconciler-env", "replica-1", slow_rounds)

    assert other.request_sync("webhook to replica-1")

    wait_for(lambda: requests_seen, timeout_s=10, what="the request, well before the next round (30 s on)")
    assert [cluster.request_counts() for cluster in clusters] == [{}] * len(clusters)
    assert requests_seen == ["webhook to replica-1"] and leader.held() == ["env"]
    leader.stop(release=True)


def test_the_election_reads_every_lease_of_its_namespace_but_the_writer_leases(
        api_client: client.ApiClient, namespace: str) -> None:
    from reconciler.kube.cluster import Cluster
    from reconciler.kube.lease import WriterLease

    elector, loop = _one_environment(api_client, LeaseSettings(namespace=namespace, **FAST_LEASE), "replica-0")
    writer = WriterLease(Cluster(api_client), namespace, "writer-env", "a pass")
    writer.acquire()
    client.CoordinationV1Api(api_client).create_namespaced_lease(namespace, {"metadata": {"name": "unlabelled"}})
    loop.round()

    [listing] = list_leases({"env": elector}).values()

    assert sorted(lease["metadata"]["name"] for lease in listing) == [
        "reconciler-env", "reconciler-member-replica-0", "unlabelled"]
    writer.release()
    loop.stop(release=True)


def _rounds(loop: ElectionLoop, count: int) -> None:
    """Wait for `count` more rounds of a started loop (each renews the heartbeat: a new resourceVersion)."""
    beat, versions = loop.heartbeats[0], set()
    wait_for(lambda: versions.add(beat.lease.record["metadata"]["resourceVersion"]) or len(versions) > count,
             timeout_s=20, what=f"{count} rounds")


def test_a_started_loops_rounds_read_the_leases_from_its_watch_with_no_list(
        api_client: client.ApiClient, namespace: str) -> None:
    elector, loop = _one_environment(api_client, LeaseSettings(namespace=namespace, **FAST_LEASE), "replica-0")
    loop.start()
    wait_for(lambda: loop.held() == ["env"], timeout_s=10, what="the environment to be claimed")
    elector.lease.cluster.reset_counts()

    _rounds(loop, 4)

    assert elector.lease.cluster.request_counts().get("list", 0) == 0
    assert loop.held() == ["env"]
    loop.stop(release=True)


def test_rounds_list_the_leases_again_when_the_watch_falls_behind_their_heartbeat(
        api_client: client.ApiClient, namespace: str) -> None:
    elector, loop = _one_environment(api_client, LeaseSettings(namespace=namespace, **FAST_LEASE), "replica-0")
    loop.start()
    wait_for(lambda: loop.held() == ["env"], timeout_s=10, what="the environment to be claimed")
    loop.watches.stop()  # it delivers nothing more: every round's heartbeat write stays undelivered
    elector.lease.cluster.reset_counts()

    _rounds(loop, 2)

    assert elector.lease.cluster.request_counts().get("list", 0) >= 1
    assert loop.held() == ["env"]
    loop.stop(release=True)


def test_a_claim_unchanged_for_many_lease_durations_stands_while_its_holders_heartbeat_is_renewed(
        api_client: client.ApiClient, namespace: str) -> None:
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    claim, holder = _one_environment(api_client, settings, "replica-0")
    holder.round()
    claimed = claim.lease.record["metadata"]["resourceVersion"]
    _, other = _one_environment(api_client, settings, "replica-1")
    started = time.monotonic()
    holder.start()
    other.start()

    wait_for(lambda: other.held() or time.monotonic() - started > 3 * FAST_LEASE["lease_duration_s"],
             timeout_s=30, what="three lease durations of rounds, or the other replica taking the claim")

    assert holder.held() == ["env"] and other.held() == []
    assert claim.lease.read()["metadata"]["resourceVersion"] == claimed  # never written again
    holder.stop(release=True)
    other.stop(release=True)


def test_a_dead_replicas_claim_is_taken_only_after_its_heartbeat_fell_silent_for_a_lease_duration(
        api_client: client.ApiClient, namespace: str) -> None:
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    claim, dead = _one_environment(api_client, settings, "replica-0")
    dead.round()
    last_beat = time.monotonic()
    dead.stop(release=False)  # its heartbeat is left to fall silent
    _, survivor = _one_environment(api_client, settings, "replica-1")

    taken_after = wait_for(lambda: survivor.round() or survivor.held() and time.monotonic() - last_beat,
                           timeout_s=15, what="the survivor to take the claim over")

    assert taken_after >= FAST_LEASE["lease_duration_s"]
    assert not claim.is_leader()
    survivor.stop(release=True)


def test_a_dead_replicas_writer_lease_is_taken_with_its_claim_not_a_lease_duration_after_first_seeing_it(
        api_client: client.ApiClient, namespace: str) -> None:
    """Killed mid-pass, a replica left its writer lease live for a lease duration after the new leader first
    saw it, which was only when its claim was taken: the environment waited twice."""
    from reconciler.kube.cluster import Cluster
    from reconciler.kube.lease import LeaseHeld, WriterLease

    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    dead_claim, dead = _one_environment(api_client, settings, "replica-0")
    dead.round()
    killed = WriterLease(Cluster(api_client), namespace, "writer-env", "pass of replica-0", duration_s=120.0,
                         heartbeat=dead_claim.heartbeat_name())
    killed.acquire()  # its record says it lasts two minutes; it is never renewed nor given back
    dead.stop(release=False)
    claim, survivor = _one_environment(api_client, settings, "replica-1")
    wait_for(lambda: survivor.round() or survivor.held(), timeout_s=15, what="the survivor to take the claim")
    unvouched = WriterLease(Cluster(api_client), namespace, "writer-env", "a sync", duration_s=1.0)
    vouched = WriterLease(Cluster(api_client), namespace, "writer-env", "pass of replica-1", duration_s=15.0,
                          heartbeat=claim.heartbeat_name(), expired=claim.heartbeat_expired)

    with pytest.raises(LeaseHeld):
        unvouched.acquire(wait_s=0)  # judged by its record alone, it is live for two minutes more
    vouched.acquire(wait_s=0)

    lease = client.CoordinationV1Api(api_client).read_namespaced_lease("writer-env", namespace)
    assert lease.spec.holder_identity == "pass of replica-1"
    assert lease.metadata.annotations["reconciler.healthflow.io/heartbeat"] == claim.heartbeat_name()
    vouched.release()
    survivor.stop(release=True)


def test_a_round_of_a_replica_leading_environments_writes_only_its_heartbeat(
        api_client: client.ApiClient, namespace: str) -> None:
    """Renewing every environment's Lease each round was about 1,000 writes a minute per cluster for a fleet
    of 100 environments over 3 clusters: a claim is written once and stands while the heartbeat does."""
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    electors = {f"env{i}": LeaseElector(api_client, f"reconciler-env{i}", "replica-0", settings) for i in range(4)}
    loop = ElectionLoop(electors, settings, lambda env, leading: None, lambda env, payload: None)
    loop.round()
    clusters = [*(e.lease.cluster for e in electors.values()), *(b.lease.cluster for b in loop.heartbeats)]
    for cluster in clusters:
        cluster.reset_counts()

    loop.round()

    counts: Counter[str] = Counter()
    for cluster in clusters:
        counts.update(cluster.request_counts())
    assert loop.held() == sorted(electors)
    assert counts == {"update": 1, "list": 1}
    loop.stop(release=True)


def test_a_replica_below_its_share_looks_at_the_leases_others_hold_with_one_list_a_round(
        api_client: client.ApiClient, namespace: str) -> None:
    """A GET per lease it does not hold, every round, was half of the idle requests of 31 environments over
    3 replicas (bench_fleet.py)."""
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    names = [f"env{i}" for i in range(4)]
    for env in names:
        assert LeaseElector(api_client, f"reconciler-{env}", "replica-1", settings).try_acquire_or_renew()
    electors = {env: LeaseElector(api_client, f"reconciler-{env}", "replica-0", settings) for env in names}
    loop = ElectionLoop(electors, settings, lambda env, leading: None, lambda env, payload: None)

    loop.round()

    counts: Counter[str] = Counter()
    for elector in electors.values():
        counts.update(elector.lease.cluster.request_counts())
    del counts["discovery"]  # the first request of a Cluster looks up where Leases are served
    assert counts == {"list": 1}
    assert loop.held() == []
    loop.stop(release=False)


def test_an_election_round_counts_the_replicas_alive_from_the_list_it_reads_the_leases_with(
        api_client: client.ApiClient, namespace: str) -> None:
    """The presence Leases live beside the environments' Leases: counting them with a LIST of their own
    listed the same namespace twice a round."""
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    names = [f"env{i}" for i in range(4)]
    for env in names:
        assert LeaseElector(api_client, f"reconciler-{env}", "replica-1", settings).try_acquire_or_renew()
    assert LeaseElector(api_client, member_lease_name("reconciler-", "replica-1"), "replica-1",
                        settings).try_acquire_or_renew()  # its heartbeat: its presence
    assert Membership(api_client, "replica-1", settings).share(len(names)) == 4  # alone so far
    members = Membership(api_client, "replica-0", settings)
    electors = {env: LeaseElector(api_client, f"reconciler-{env}", "replica-0", settings) for env in names}
    loop = ElectionLoop(electors, settings, lambda env, leading: None, lambda env, payload: None, share=members.share)

    loop.round()

    clusters = [*(e.lease.cluster for e in electors.values()), members.cluster]
    assert sum(c.request_counts().get("list", 0) for c in clusters) == 1
    assert loop.held() == [] and members.alive() == 2  # replica-1 is alive and holds them all
    loop.stop(release=False)


def test_a_replica_at_its_share_keeps_watching_other_leases_and_takes_a_dead_holders_when_it_may(
        api_client: client.ApiClient, namespace: str) -> None:
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    assert LeaseElector(api_client, "reconciler-env0", "replica-1", settings).try_acquire_or_renew()  # then dies
    share = [0]
    elector = LeaseElector(api_client, "reconciler-env0", "replica-0", settings)
    loop = ElectionLoop({"env0": elector}, settings, lambda env, leading: None, lambda env, payload: None,
                        share=lambda environments, listings: share[0])
    started = time.monotonic()
    loop.round()
    wait_for(lambda: loop.round() or time.monotonic() - started > FAST_LEASE["lease_duration_s"] + 0.5,
             timeout_s=10, what="rounds at the share for longer than a lease duration")

    share[0] = 1
    loop.round()

    assert loop.held() == ["env0"]  # without watching, it would start counting the lease's silence only now
    loop.stop(release=True)


def test_a_replica_takes_a_free_lease_it_found_in_the_rounds_list(
        api_client: client.ApiClient, namespace: str) -> None:
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    other = LeaseElector(api_client, "reconciler-env0", "replica-1", settings)
    assert other.try_acquire_or_renew()
    other.release()
    electors = {env: LeaseElector(api_client, f"reconciler-{env}", "replica-0", settings) for env in ("env0", "env1")}
    loop = ElectionLoop(electors, settings, lambda env, leading: None, lambda env, payload: None)

    loop.round()

    assert loop.held() == ["env0", "env1"]  # env0 released by its holder, env1 never created before
    assert {e.lease.record["spec"]["holderIdentity"] for e in electors.values()} == {"replica-0"}
    loop.stop(release=True)


def test_a_lease_that_lapsed_and_was_renewed_is_reported_as_lost_and_gained_again(
        api_client: client.ApiClient, namespace: str) -> None:
    """A round that comes after the renew deadline (a loaded process) finds the lease lapsed: passes that
    looked meanwhile stopped, so the renewal must count as a new term (whose start requests a pass)."""
    now = [1000.0]
    elector = LeaseElector(api_client, "reconciler-lapse", "replica-0", LeaseSettings(namespace=namespace, **FAST_LEASE),
                           clock=lambda: now[0])
    changes: list[tuple[str, bool]] = []
    loop = ElectionLoop({"env": elector}, LeaseSettings(namespace=namespace, **FAST_LEASE),
                        lambda env, leading: changes.append((env, leading)), lambda env, payload: None)
    loop.round()
    now[0] += FAST_LEASE["renew_deadline_s"] + 0.5  # the next round is late
    assert not elector.is_leader()

    loop.round()

    assert elector.is_leader()
    assert changes == [("env", True), ("env", False), ("env", True)]


def test_a_lease_that_ran_out_while_its_renewal_was_in_flight_is_reported_as_lost_and_gained_again(
        api_client: client.ApiClient, namespace: str) -> None:
    """Found by bench_fleet: a renewal that started in time but landed after the validity ran out kept the
    lease, while the pass that looked in between stopped; nothing asked for a pass again for an hour."""
    now = [1000.0]
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    elector = LeaseElector(api_client, "reconciler-slow", "replica-0", settings, clock=lambda: now[0])
    changes: list[tuple[str, bool]] = []
    loop = ElectionLoop({"env": elector}, settings, lambda env, leading: changes.append((env, leading)),
                        lambda env, payload: None)
    loop.round()
    now[0] += FAST_LEASE["renew_deadline_s"] - 0.5  # the next round starts in time...
    heartbeat = loop.heartbeats[0].lease.cluster
    replace = heartbeat.replace

    def slow_replace(manifest: dict) -> dict:
        now[0] += 1.0  # ...but its heartbeat's renewal lands after the validity ran out
        return replace(manifest)

    heartbeat.replace = slow_replace  # type: ignore[method-assign]

    loop.round()

    assert elector.is_leader()
    assert changes == [("env", True), ("env", False), ("env", True)]


def _three_sharing_replicas(api_client: client.ApiClient, namespace: str, envs: list[str],
                            on_change: Callable[[str], Callable[[str, bool], None]]) -> dict[str, ElectionLoop]:
    """Election loops of three replicas (alpha, beta, gamma) sharing `envs`, started one after another, once
    each leads its share; `on_change(name)` hears that replica's leadership changes."""
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    loops = {name: ElectionLoop({env: LeaseElector(api_client, f"reconciler-{env}", name, settings) for env in envs},
                                settings, on_change(name), lambda env, payload: None,
                                share=Membership(api_client, name, settings).share)
             for name in ("alpha", "beta", "gamma")}
    for loop in loops.values():
        loop.start()
    share = -(-len(envs) // 3)
    try:
        wait_for(lambda: sorted(len(loop.held()) for loop in loops.values()) == [share] * 3, timeout_s=90,
                 what="each of three replicas to lead its share")
    except BaseException:
        for loop in loops.values():
            loop.stop(release=True)
        raise
    return loops


def test_thirty_environments_spread_over_three_replicas_and_a_dead_replicas_share_is_taken_over(
        api_client: client.ApiClient, namespace: str) -> None:
    envs = [f"env{i:02}" for i in range(30)]
    loops = _three_sharing_replicas(api_client, namespace, envs, lambda name: lambda env, leading: None)
    try:
        killed_at = time.monotonic()
        loops["gamma"].stop(release=False)  # dies: its leases are left to expire

        wait_for(lambda: sorted(len(loops[n].held()) for n in ("alpha", "beta")) == [15, 15], timeout_s=90,
                 what="the two survivors to take the dead replica's share over")

        print(f"\ntakeover of 10 environments after a replica died: {time.monotonic() - killed_at:.1f} s "
              f"(lease duration {FAST_LEASE['lease_duration_s']} s, retry period {FAST_LEASE['retry_period_s']} s)")
        alpha, beta = set(loops["alpha"].held()), set(loops["beta"].held())
        assert not alpha & beta and alpha | beta == set(envs)
    finally:
        for name in ("alpha", "beta"):
            loops[name].stop(release=True)


def test_replicas_started_together_never_lead_more_than_their_share(
        api_client: client.ApiClient, namespace: str) -> None:
    """Claiming in its first round, the first of three replicas took every environment before the others'
    heartbeats showed, and gave most back in the next rounds (a fleet replica kept the memory of 73 of 100
    environments); a started loop's first claims wait until replicas started with it have shown."""
    most: Counter[str] = Counter()

    def counting(name: str) -> Callable[[str, bool], None]:
        led: set[str] = set()

        def changed(env: str, leading: bool) -> None:
            (led.add if leading else led.discard)(env)
            most[name] = max(most[name], len(led))
        return changed

    loops = _three_sharing_replicas(api_client, namespace, [f"env{i:02}" for i in range(30)], counting)
    try:
        assert most == {"alpha": 10, "beta": 10, "gamma": 10}
    finally:
        for loop in loops.values():
            loop.stop(release=True)


# ---- two daemon processes ---------------------------------------------------------------------------

def _start_daemon(tmp_path: Path, name: str, env_file: Path, kubeconfig: Path, namespace: str, port: int,
                  extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    log = open(tmp_path / f"{name}.log", "w")
    environ = {**os.environ, "RECONCILER_API_TOKEN": API_TOKEN, "RECONCILER_GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
               **(extra_env or {})}
    command = [sys.executable, "-m", "reconciler", "run", "--environments", str(env_file),
               "--listen", f"127.0.0.1:{port}", "--cache-dir", str(tmp_path / f"cache-{name}"),
               "--kubeconfig", str(kubeconfig), "--identity", name, "--leader-election",
               "--lease-namespace", namespace, "--lease-duration", "4s", "--renew-deadline", "3s",
               "--retry-period", "0.5s", "--no-kubernetes-events", "--log-format", "json"]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=environ)


def _status(port: int) -> dict[str, Any] | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/status", timeout=10).json()
    except requests.RequestException:
        return None


def _leads(port: int) -> bool:
    status = _status(port)
    return bool(status and status["envs"][0]["leader"])


def test_of_two_daemon_processes_only_the_lease_holder_applies_and_the_other_takes_over_when_it_dies(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path,
        processes: list[subprocess.Popen]) -> None:
    env_file = write_env(tmp_path / "env.yaml", repo, [("app", [])], interval="2s")
    ports = {"alpha": free_port(), "beta": free_port()}
    for name, port in ports.items():
        processes.append(_start_daemon(tmp_path, name, env_file, kubeconfig, namespace, port))
    leader = wait_for(lambda: next((n for n, p in ports.items() if _leads(p)), None), timeout_s=60,
                      what="one daemon to lead")
    follower = next(n for n in ports if n != leader)
    wait_for(lambda: configmap_value(api_client, namespace, "app-settings") == "v1", timeout_s=120,
             what="the leader to apply")
    follower_status = wait_for(lambda: _status(ports[follower]), timeout_s=30, what="the follower to answer")
    assert not follower_status["envs"][0]["leader"]
    follower_runs = [r for r in follower_status["runs"] if r["state"] in ("succeeded", "failed", "running")]
    assert follower_runs == [], "a replica without the lease ran a pass"

    processes[list(ports).index(leader)].send_signal(signal.SIGKILL)
    wait_for(lambda: _leads(ports[follower]), timeout_s=60, what="the follower to take over the lease")

    configmap_stack(repo, "app", namespace, {"value": "v3"})
    repo.commit_and_push("v3")
    wait_for(lambda: configmap_value(api_client, namespace, "app-settings") == "v3", timeout_s=120,
             what="the new leader to apply the next commit")


def test_with_leader_election_on_a_cluster_without_the_lease_namespace_the_daemon_creates_it_and_reconciles(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path,
        processes: list[subprocess.Popen]) -> None:
    lease_namespace = f"{namespace}-leases"  # does not exist: what a fresh cluster looks like to the election
    core = client.CoreV1Api(api_client)
    env_file = write_env(tmp_path / "env.yaml", repo, [("app", [])], interval="1h")
    port = free_port()
    log = open(tmp_path / "fresh.log", "w")
    command = [sys.executable, "-m", "reconciler", "run", "--environments", str(env_file),
               "--listen", f"127.0.0.1:{port}", "--cache-dir", str(tmp_path / "cache-fresh"),
               "--kubeconfig", str(kubeconfig), "--identity", "fresh", "--leader-election",
               "--lease-namespace", lease_namespace, "--no-kubernetes-events", "--log-format", "json"]
    processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                      env={**os.environ, "RECONCILER_API_TOKEN": API_TOKEN}))
    try:
        wait_for(lambda: configmap_value(api_client, namespace, "app-settings") == "v1", timeout_s=120,
                 what="the elected daemon to apply")
        assert core.read_namespace(lease_namespace).metadata.name == lease_namespace
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease(
            f"reconciler-{load_environment(env_file).name}", lease_namespace)
        assert lease.spec.holder_identity == "fresh"
    finally:
        processes[0].kill()
        core.delete_namespace(lease_namespace, _preload_content=False) if _exists(core, lease_namespace) else None


def _exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
        return True
    except client.ApiException:
        return False


def test_sigterm_stops_the_daemon_cleanly_and_releases_its_lease(tmp_path: Path, repo: GitRepo, namespace: str,
                                                                 api_client: client.ApiClient, kubeconfig: Path,
                                                                 processes: list[subprocess.Popen]) -> None:
    env_file = write_env(tmp_path / "env.yaml", repo, [("app", [])], interval="1h")
    port = free_port()
    processes.append(_start_daemon(tmp_path, "solo", env_file, kubeconfig, namespace, port))
    wait_for(lambda: _leads(port), timeout_s=60, what="the daemon to lead")
    wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200, timeout_s=60,
             what="ready")
    processes[0].send_signal(signal.SIGTERM)
    assert processes[0].wait(60) == 0
    env_name = load_environment(env_file).name
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(f"reconciler-{env_name}", namespace)
    assert not lease.spec.holder_identity


def test_a_daemons_writer_lease_lasts_its_lease_duration_so_a_killed_daemon_holds_writes_up_no_longer(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path,
        processes: list[subprocess.Popen]) -> None:
    env_file = write_env(tmp_path / "env.yaml", repo, [("app", [])], interval="1h")
    name = f"writer-{load_environment(env_file).name}"
    leases = client.CoordinationV1Api(api_client)
    selector = f"metadata.name={name}"
    since = leases.list_namespaced_lease("healthflow-system", field_selector=selector).metadata.resource_version
    stream = watch_events(leases.list_namespaced_lease, "healthflow-system", field_selector=selector,
                          resource_version=since, timeout_s=90)  # every write from now on
    processes.append(_start_daemon(tmp_path, "solo", env_file, kubeconfig, namespace, free_port()))

    held = next((spec for spec in (event["object"]["spec"] for event in stream) if spec.get("holderIdentity")), None)

    assert held is not None, "the daemon never took its writer lease"
    assert held["holderIdentity"].startswith("reconciler daemon")
    assert held["leaseDurationSeconds"] == 4  # --lease-duration 4s, not the 15 s default


@contextmanager
def _two_canned_replicas(tmp_path: Path, api_client: client.ApiClient, namespace: str) -> Iterator[tuple[Any, Any, Any]]:
    """(leader, follower, environment): two daemons of one environment, electing over real leases; a canned
    engine applies nothing."""
    from daemon_support import CannedEngine

    env = load_environment(write_env(tmp_path / "env.yaml", GitRepo.create(tmp_path / "git"), [("app", [])]))

    def factory(e: Any) -> CannedEngine:
        engine = CannedEngine(e)
        engine.api_client = api_client
        return engine

    lease = LeaseSettings(namespace=namespace, **FAST_LEASE)
    with ExitStack() as stack:
        replicas = [stack.enter_context(running_daemon(
            [env], factory, settings=DaemonSettings(poll=False, identity=f"r{i}", lease=lease))) for i in range(2)]
        leader = wait_for(lambda: next((r for r in replicas if r.daemon.may_apply(env.name)), None), timeout_s=30,
                          what="a leader")
        yield leader, next(r for r in replicas if r is not leader), env


def test_a_sync_request_to_a_replica_without_the_lease_is_run_by_the_leader(
        tmp_path: Path, api_client: client.ApiClient, namespace: str) -> None:
    """Scheduling only; the leases and the forwarding are real."""
    with _two_canned_replicas(tmp_path, api_client, namespace) as (leader, follower, env):
        response = requests.post(f"{follower.base}/api/sync", json={"env": env.name},
                                 headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert response.status_code == 202 and response.json()["state"] == "forwarded"
        wait_for(lambda: any(r.sources == ["forwarded:manual"] and r.state.value == "succeeded"
                             for r in leader.daemon.runbook.recent(50)), timeout_s=30, what="the leader's pass")
        assert not any(r.state.value == "succeeded" for r in follower.daemon.runbook.recent(50))


def test_the_status_asked_for_the_led_environments_lists_only_those_this_replica_leads(
        tmp_path: Path, api_client: client.ApiClient, namespace: str) -> None:
    def names(replica: Any, led: str) -> list[str]:
        return [e["name"] for e in requests.get(f"{replica.base}/api/status", params={"leader": led}).json()["envs"]]

    with _two_canned_replicas(tmp_path, api_client, namespace) as (leader, follower, env):
        assert names(leader, "true") == [env.name] and names(leader, "false") == []
        assert names(follower, "true") == [] and names(follower, "false") == [env.name]


def test_readyz_is_200_while_the_scheduler_runs_and_the_cluster_answers(tmp_path: Path,
                                                                        api_client: client.ApiClient) -> None:
    from daemon_support import CannedEngine

    env = load_environment(write_env(tmp_path / "env.yaml", GitRepo.create(tmp_path / "git"), [("app", [])]))

    def factory(e: Any) -> CannedEngine:
        engine = CannedEngine(e)
        engine.api_client = api_client
        return engine

    with running_daemon([env], factory, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        assert requests.get(f"{d.base}/readyz").status_code == 200
        d.daemon.scheduler.shutdown(wait=False)
        response = requests.get(f"{d.base}/readyz")
        assert response.status_code == 503 and response.json()["reason"] == "scheduler not running"


def test_a_claim_left_in_a_replicas_name_that_it_does_not_lead_is_released_for_the_others(
        api_client: client.ApiClient, namespace: str) -> None:
    """A release that lost a race (a sync request annotated meanwhile) left the Lease in the replica's name;
    its live heartbeat then vouched for it and nobody led the environment (bench_fleet: 8 of 100)."""
    settings = LeaseSettings(namespace=namespace, **FAST_LEASE)
    claim, holder = _one_environment(api_client, settings, "replica-0")
    holder.round()
    claim._claim = None  # as after a release whose write failed: not led, still in its name
    _, other = _one_environment(api_client, settings, "replica-1")

    holder._share = lambda environments, listings: 0  # at its share: it will not claim it again
    holder.round()
    other.round()

    assert holder.held() == [] and other.held() == ["env"]
    holder.stop(release=True)
    other.stop(release=True)
