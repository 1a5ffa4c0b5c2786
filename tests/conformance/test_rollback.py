"""After a bad deploy: back to the last healthy commit, by command or automatically, pinned until lifted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from kubernetes import config

from daemon_support import free_port
from helpers import wait_for
from reconciler.kube.cluster import Cluster
from reconciler.kube.lease import WriterLease
from manifests import write_policies_enforcing_only_min_replicas
from scenario import Scenario, configmap, deployment

pytestmark = pytest.mark.cluster


def _web(ns: str, version: str, schedulable: bool = True) -> dict:
    """The app's Deployment; unschedulable, it never becomes available (no node has the label)."""
    body = deployment("web", ns, replicas=1, env=[{"name": "VERSION", "value": version}])
    if not schedulable:
        body["spec"]["template"]["spec"]["nodeSelector"] = {"conformance.test/no-such-node": "true"}
    return body


def _version(scenario: Scenario) -> str:
    live = scenario.live("deployment", "web")
    assert live is not None
    [container] = live["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container.get("env", [])}["VERSION"]


def _good_then_bad(scenario: Scenario) -> tuple[str, str]:
    """app (a Deployment) and edge (depends on app): commit v1 synced healthy, then a v2 that never becomes available."""
    ns = scenario.namespace
    scenario.stack("app", [_web(ns, "v1")], healthTimeout="4s")
    scenario.stack("edge", [configmap("edge", ns, {"upstream": "web-v1"})], depends_on=("app",))
    good = scenario.commit("v1")
    assert scenario.run("sync").code == 1
    scenario.stack("app", [_web(ns, "v2", schedulable=False)], healthTimeout="4s")
    scenario.stack("edge", [configmap("edge", ns, {"upstream": "web-v2"})], depends_on=("app",))
    bad = scenario.commit("v2: pods cannot be scheduled")
    return good, bad


def test_a_bad_commit_is_rolled_back_by_the_command_with_its_dependents_and_pinned(scenario: Scenario) -> None:
    good, bad = _good_then_bad(scenario)
    failed = scenario.run("sync")
    assert failed.code == 2 and _version(scenario) == "v2"

    rollback = scenario.run("rollback", "--stack", "app")

    assert rollback.code == 0, rollback.out + rollback.err
    assert f"rollback of app, edge from {bad[:10]} to {good[:10]}: healthy" in rollback.out, rollback.out
    assert _version(scenario) == "v1"
    assert scenario.live("configmap", "edge")["data"] == {"upstream": "web-v1"}
    status = scenario.run("status", "-o", "json").json
    pinned = {s["stack"]: s["pinned"]["revision"] for s in status["stacks"] if s["pinned"]}
    assert pinned == {"app": good, "edge": good}
    history = next(s["history"] for s in status["stacks"] if s["stack"] == "app")
    assert [(e["commit"], e["result"], e["healthy"]) for e in history] == [
        (good, "applied", True), (bad, "failed", False), (good, "applied", True)]


def test_a_pinned_environment_does_not_apply_the_branch_head_until_unpinned(scenario: Scenario) -> None:
    good, bad = _good_then_bad(scenario)
    scenario.run("sync")
    assert scenario.run("rollback", "--stack", "app").code == 0

    again = scenario.run("sync")
    assert again.code == 0, again.out + again.err
    assert "pinned: app, edge at " + good[:10] in again.out and _version(scenario) == "v1"

    unpin = scenario.run("unpin")
    assert unpin.code == 0 and "unpinned app, edge" in unpin.out
    assert scenario.run("sync").code == 2 and _version(scenario) == "v2"


def test_a_new_commit_lifts_the_pin_when_unpin_on_new_commit_is_set(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.env_extra["rollback"] = {"unpinOnNewCommit": True}
    _good_then_bad(scenario)
    scenario.run("sync")
    assert scenario.run("rollback", "--stack", "app").code == 0
    scenario.stack("app", [_web(ns, "v3")], healthTimeout="4s")
    scenario.commit("v3: fixed forward")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert "pins lifted by the new commit" in sync.out and _version(scenario) == "v3"
    assert not any(s["pinned"] for s in scenario.run("status", "-o", "json").json["stacks"])


def test_a_rollback_names_what_is_wrong_and_changes_nothing(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("app", [_web(ns, "v1")], healthTimeout="4s")
    first = scenario.commit("v1")

    never_synced = scenario.run("rollback", "--stack", "app")
    assert never_synced.code == 2 and "has no history yet" in never_synced.err, never_synced.err
    scenario.run("sync")
    unknown_stack = scenario.run("rollback", "--stack", "nope")
    assert unknown_stack.code == 2 and "has no stack 'nope'" in unknown_stack.err
    unknown_revision = scenario.run("rollback", "--stack", "app", "--to", "no-such-branch")
    assert unknown_revision.code == 2 and "revision 'no-such-branch' not found" in unknown_revision.err
    scenario.stack("app", [_web(ns, "v2")], healthTimeout="4s")
    scenario.commit("v2")
    scenario.stack("app", [_web(ns, "v3")], healthTimeout="4s")
    outside = scenario.commit("v3, never synced")
    scenario.repo.repo.git.push("origin", f"{outside}:refs/heads/later")
    not_applied = scenario.run("rollback", "--stack", "app", "--to", "later")
    assert not_applied.code == 2 and "is not among the last 1 commits stack 'app' applied" in not_applied.err
    assert first[:10] in not_applied.err
    nothing_older = scenario.run("rollback", "--stack", "app")
    assert nothing_older.code == 2 and "no commit in the last 1" in nothing_older.err, nothing_older.err
    assert _version(scenario) == "v1" and not any(s["pinned"] for s in scenario.run("status", "-o", "json").json["stacks"])


def test_a_rollback_target_that_fails_todays_policy_is_refused(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("app", [_web(ns, "v1")], healthTimeout="4s")
    good = scenario.commit("v1, one replica")
    scenario.run("sync")
    scenario.stack("app", [_web(ns, "v2")], healthTimeout="4s")
    write_policies_enforcing_only_min_replicas(scenario.repo, 1)
    scenario.commit("v2")
    scenario.run("sync")
    write_policies_enforcing_only_min_replicas(scenario.repo, 2)
    scenario.stack("app", [_web(ns, "v2") | {"spec": {**_web(ns, "v2")["spec"], "replicas": 2}}], healthTimeout="4s")
    scenario.commit("policy: two replicas at least")
    assert scenario.run("sync").code == 1

    refused = scenario.run("rollback", "--stack", "app", "--to", good)

    assert refused.code == 2, refused.out + refused.err
    assert "refused" in refused.err and "enforced policy violation" in refused.err and "min-replicas" in refused.err
    assert _version(scenario) == "v2" and not any(s["pinned"] for s in scenario.run("status", "-o", "json").json["stacks"])


def _daemon(scenario: Scenario, tmp_path: Path, port: int) -> subprocess.Popen:
    log = open(tmp_path / f"daemon-{port}.log", "a")
    return subprocess.Popen([sys.executable, "-m", "reconciler", "run", "--environments", str(scenario.env_file),
                             "--listen", f"127.0.0.1:{port}", "--cache-dir", str(scenario.cache_dir),
                             "--kubeconfig", str(scenario.kubeconfig), "--no-kubernetes-events",
                             "--log-format", "json"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RECONCILER_API_TOKEN": "t0ken"})


def _status(port: int) -> dict | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/status", timeout=2).json()["envs"][0]
    except (requests.RequestException, ValueError):
        return None


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def test_a_bad_commit_is_rolled_back_automatically_once_and_the_alert_names_both_commits(
        scenario: Scenario, tmp_path: Path) -> None:
    scenario.sync_options["autoRollback"] = True
    good, bad = _good_then_bad(scenario)
    port = free_port()
    daemon = _daemon(scenario, tmp_path, port)
    try:
        last = wait_for(lambda: (s := _status(port)) and s["last_run"] and s["last_run"]["done"] and s,
                        timeout_s=120, what="the daemon's first pass")
        alerts = requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()["alerts"]
    finally:
        _stop(daemon)

    assert _version(scenario) == "v1" and scenario.live("configmap", "edge")["data"] == {"upstream": "web-v1"}
    assert {s["name"]: s["pinned"]["revision"] if s["pinned"] else None for s in last["stacks"]} == {
        "app": good, "edge": good}
    [alert] = [a for a in alerts if a["kind"] == "rolled_back"]
    assert bad[:10] in alert["title"] and good[:10] in alert["title"], alert
    history = next(s["history"] for s in scenario.run("status", "-o", "json").json["stacks"] if s["stack"] == "app")
    assert history[0]["commit"] == good and history[0]["pinned"]
    assert history[1]["commit"] == bad and history[1]["rolled_back_to"] == good

    unpin = scenario.run("unpin")
    assert unpin.code == 0
    again = scenario.run("sync")
    assert again.code == 2 and "automatic rollback" not in again.out, "rolled back twice for one failing commit"
    assert _version(scenario) == "v2"


def test_the_pin_holds_across_a_daemon_restart(scenario: Scenario, tmp_path: Path) -> None:
    good, _ = _good_then_bad(scenario)
    scenario.run("sync")
    assert scenario.run("rollback", "--stack", "app").code == 0

    for _ in range(2):  # a first daemon, then a second one started after it stopped
        port = free_port()
        daemon = _daemon(scenario, tmp_path, port)
        try:
            last = wait_for(lambda: (s := _status(port)) and s["last_run"] and s["last_run"]["done"] and s,
                            timeout_s=120, what="the daemon's first pass")
        finally:
            _stop(daemon)
        assert last["last_run"]["state"] == "succeeded", last["last_run"]
        assert last["pins"]["stacks"]["app"]["revision"] == good
        assert _version(scenario) == "v1"


def test_a_rollback_while_another_writer_holds_the_environment_exits_2_naming_it_and_changes_nothing(
        scenario: Scenario) -> None:
    _good_then_bad(scenario)
    scenario.run("sync")
    cluster = Cluster(config.new_client_from_config(config_file=str(scenario.kubeconfig)))
    other = WriterLease(cluster, "healthflow-system", f"writer-{scenario.name}", "sync on alice-laptop pid 4242")
    other.acquire()
    try:
        refused = scenario.run("rollback", "--stack", "app")
    finally:
        other.release()

    assert refused.code == 2 and "sync on alice-laptop pid 4242" in refused.err, refused.out + refused.err
    assert _version(scenario) == "v2"
    assert not any(s["pinned"] for s in scenario.run("status", "-o", "json").json["stacks"])


def test_a_pin_on_a_stack_removed_from_the_environment_is_dropped_with_a_notice(scenario: Scenario) -> None:
    _good_then_bad(scenario)
    scenario.run("sync")
    assert scenario.run("rollback", "--stack", "app").code == 0
    del scenario.stacks["edge"]
    scenario.write_env()

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err  # the removed stack's objects were pruned
    assert "pin of stack 'edge' dropped: the stack is no longer in the environment" in sync.out
    assert "pinned: app at" in sync.out and _version(scenario) == "v1"
    assert scenario.live("configmap", "edge") is None, "the removed stack's objects stay"
    assert [s["stack"] for s in scenario.run("status", "-o", "json").json["stacks"] if s["pinned"]] == ["app"]


def test_a_rollback_without_a_stack_takes_every_stack_back_to_the_last_commit_all_were_healthy(
        scenario: Scenario) -> None:
    good, _ = _good_then_bad(scenario)
    scenario.run("sync")

    rollback = scenario.run("rollback", "-o", "json")

    assert rollback.code == 0, rollback.out + rollback.err
    assert [(r["stacks"], r["to_commit"], r["ok"]) for r in rollback.json["rollbacks"]] == [(["app", "edge"], good, True)]
    assert _version(scenario) == "v1" and scenario.live("configmap", "edge")["data"] == {"upstream": "web-v1"}
