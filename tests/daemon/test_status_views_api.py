"""The HTTP API behind the status page's views, over real sockets, with a real engine on the
devcluster: a stack's objects paged, filtered and searched; one object's drift; plans that write
nothing; the event streams; the read token guarding all of it."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import yaml
from kubernetes import client

from daemon_support import GitRepo, configmap_stack, running_daemon, write_env
from helpers import wait_for
from manifests import deployment
from reconciler.config import load_environment
from reconciler.daemon.service import DaemonSettings, default_engine_factory

pytestmark = pytest.mark.cluster
QUIET = DaemonSettings(poll=False, initial_pass=False, live=False)


def write_stack(repo: GitRepo, namespace: str, count: int, value: str = "v1", web: bool = False,
                extra: tuple[dict, ...] = ()) -> None:
    docs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"settings-{i:03d}", "namespace": namespace},
             "data": {"value": value}} for i in range(count)] + list(extra)
    if web:
        body = deployment("web", namespace)
        body["spec"]["template"]["spec"]["nodeSelector"] = {"api.test/no-such-node": "true"}
        docs.append(body)
    repo.write("stacks/app/objects.yaml", yaml.safe_dump_all(docs))
    repo.write("stacks/app/kustomization.yaml", yaml.safe_dump({"resources": ["objects.yaml"]}))


@pytest.fixture()
def daemon(repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path) -> Iterator[Any]:
    write_stack(repo, namespace, 30, web=True)
    repo.commit_and_push("30 settings and a web that cannot run")
    env = load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])], sync={"waitForHealth": False}))
    with running_daemon([env], default_engine_factory(tmp_path / "cache", kubeconfig), settings=QUIET) as running:
        running.env = env
        running.manual_pass(env.name, "the first pass")
        yield running


def objects(d: Any, **query: Any) -> dict:
    answer = requests.get(f"{d.base}/api/objects", params={"env": d.env.name, "stack": "app", **query}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_stacks_objects_come_in_pages_with_counts_over_all_of_them(daemon: Any) -> None:
    first, last = objects(daemon, limit=20), objects(daemon, offset=20, limit=20)

    assert first["total"] == last["total"] == 31 and first["matched"] == 31
    assert len(first["items"]) == 20 and len(last["items"]) == 11
    assert {i["id"] for i in first["items"]}.isdisjoint(i["id"] for i in last["items"])
    assert first["counts"]["all"] == 31 and first["counts"]["unhealthy"] == 1
    assert all(i["commit"] == first["commit"] for i in first["items"] + last["items"])


def test_the_unhealthy_filter_names_the_object_and_why(daemon: Any, namespace: str) -> None:
    [web] = objects(daemon, show="unhealthy")["items"]

    assert web["id"] == f"apps/Deployment/{namespace}/web" and web["health"] == "progressing"
    assert web["health_reason"]


def test_the_objects_a_rejected_commit_adds_are_listed_as_not_applied_with_the_failure(
        daemon: Any, repo: GitRepo, namespace: str) -> None:
    added = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings-new", "namespace": namespace},
             "data": {"value": "v2"}}
    rejected = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_Name", "namespace": namespace}}
    write_stack(repo, namespace, 30, web=True, extra=(added, rejected))
    sha = repo.commit_and_push("a new setting and an object the API server rejects")
    run = daemon.manual_pass(daemon.env.name, "the rejected pass")

    not_applied = {row["name"]: row for row in objects(daemon, show="not applied")["items"]}
    assert run.state.value == "failed"
    assert set(not_applied) == {"settings-new", "Not_A_Name"} and objects(daemon)["total"] == 33
    why = not_applied["settings-new"]["health_reason"]
    assert why.startswith(f"new in {sha[:10]}, not applied: nothing applied") and "Not_A_Name" in why, why
    assert not_applied["settings-new"]["commit"] is None


def test_the_not_applied_objects_name_their_own_stacks_last_commit_after_another_stack_synced_alone(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path) -> None:
    configmap_stack(repo, "other", namespace, {"value": "v1"})
    repo.commit_and_push("a second stack")
    env = load_environment(write_env(tmp_path / "env.yaml", repo, [("app", []), ("other", [])]))
    with running_daemon([env], default_engine_factory(tmp_path / "cache", kubeconfig), settings=QUIET) as running:
        running.env = env
        running.manual_pass(env.name, "the first pass", must_succeed=True)
        rejected = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Name\n"
        configmap_stack(repo, "app", namespace, {"value": "v2"}, extra=rejected)
        app_commit = repo.commit_and_push("app: an object the API server rejects")
        running.manual_pass(env.name, "the rejected pass")
        configmap_stack(repo, "other", namespace, {"value": "v2"})
        repo.commit_and_push("other: a new value")
        running.manual_pass(env.name, "other alone", must_succeed=True, stack="other")

        not_applied = objects(running, show="not applied")["items"]

    assert [row["name"] for row in not_applied] == ["Not_A_Name"]
    assert not_applied[0]["health_reason"].startswith(f"new in {app_commit[:10]}, not applied: "), not_applied


def test_a_search_matches_every_word_in_kind_namespace_and_name(daemon: Any) -> None:
    found = objects(daemon, q="configmap settings-01")

    assert found["matched"] == 10 and all(i["name"].startswith("settings-01") for i in found["items"])


def test_an_unknown_filter_stack_or_object_is_refused_naming_it(daemon: Any) -> None:
    base, env = daemon.base, daemon.env.name
    bad_filter = requests.get(f"{base}/api/objects", params={"env": env, "stack": "app", "show": "odd"}, timeout=10)
    no_stack = requests.get(f"{base}/api/objects", params={"env": env, "stack": "nope"}, timeout=10)
    no_object = requests.get(f"{base}/api/object", params={"env": env, "stack": "app", "id": "core/ConfigMap/x/y"},
                             timeout=10)

    assert bad_filter.status_code == 422 and "unhealthy" in bad_filter.text
    assert no_stack.status_code == 404 and "nope" in no_stack.text
    assert no_object.status_code == 404 and "core/ConfigMap/x/y" in no_object.text


def test_an_objects_drift_comes_field_by_field_and_as_a_unified_diff(
        daemon: Any, namespace: str, api_client: client.ApiClient) -> None:
    client.CoreV1Api(api_client).patch_namespaced_config_map("settings-004", namespace, {"data": {"value": "by-hand"}})
    daemon.daemon.states[daemon.env.name].last_drift = daemon.daemon.engines[daemon.env.name].drift()

    detail = requests.get(f"{daemon.base}/api/object", params={
        "env": daemon.env.name, "stack": "app", "id": f"core/ConfigMap/{namespace}/settings-004"}, timeout=30).json()

    assert detail["drift"] == "modified" and detail["object"]["drift"] == "modified"
    assert detail["fields"] == [{"path": "data.value", "desired": "v1", "live": "by-hand"}]
    assert "-data.value: v1" in detail["diff"] and "+data.value: by-hand" in detail["diff"]


def _finished(d: Any, run_id: str) -> dict:
    def done() -> dict | None:
        body = requests.get(f"{d.base}/api/runs/{run_id}", timeout=10).json()
        return body if body["done"] else None

    return wait_for(done, timeout_s=60, what=f"run {run_id}")


def test_a_plan_reports_the_pending_change_with_a_diff_and_writes_nothing(
        daemon: Any, repo: GitRepo, namespace: str, api_client: client.ApiClient) -> None:
    repo.write("stacks/app/objects.yaml", repo.work.joinpath("stacks/app/objects.yaml").read_text()
               .replace("value: v1", "value: v2", 1))
    repo.commit_and_push("settings-000 to v2")

    queued = requests.post(f"{daemon.base}/api/plan", json={"env": daemon.env.name}, timeout=10)
    run = _finished(daemon, queued.json()["run_id"])

    assert queued.status_code == 202 and run["state"] == "succeeded" and run["action"] == "plan"
    [change] = run["report"]["stacks"][0]["changes"]
    assert change["id"] == f"core/ConfigMap/{namespace}/settings-000" and change["action"] == "update"
    assert "-data.value: v1" in change["diff"] and "+data.value: v2" in change["diff"]
    live = client.CoreV1Api(api_client).read_namespaced_config_map("settings-000", namespace)
    assert live.data["value"] == "v1"
    assert daemon.daemon.states[daemon.env.name].last_run.action == "sync"  # a read is recorded nowhere


def test_a_preview_of_an_unknown_branch_fails_its_run_saying_so(daemon: Any) -> None:
    queued = requests.post(f"{daemon.base}/api/preview", json={"env": daemon.env.name, "revision": "no-such-branch"},
                           timeout=10)
    run = _finished(daemon, queued.json()["run_id"])

    assert run["state"] == "failed" and "no-such-branch" in run["message"]
    assert daemon.daemon.states[daemon.env.name].failures == 0  # a read's failure is not the environment's


def _events(url: str, count: int, seen: list[tuple[str, Any]] | None = None,
            timeout_s: float = 30) -> list[tuple[str, Any]]:
    """The first `count` server-sent events of `url`, appended to `seen` as they come."""
    seen = [] if seen is None else seen
    with requests.get(url, stream=True, timeout=timeout_s) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines(chunk_size=1, decode_unicode=True):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                seen.append((name, json.loads(line[6:])))
                if len(seen) >= count:
                    return seen
    return seen


def test_the_event_stream_says_changed_when_a_pass_finishes(daemon: Any) -> None:
    got: list[tuple[str, Any]] = []
    reader = threading.Thread(target=_events, args=(f"{daemon.base}/api/events", 2, got))
    reader.start()
    wait_for(lambda: got or None, timeout_s=10, what="the stream's first event")
    daemon.manual_pass(daemon.env.name, "the pass")
    reader.join(30)

    assert [name for name, _ in got] == ["changed", "changed"]


def test_a_runs_event_stream_follows_it_to_done_with_the_record(daemon: Any) -> None:
    run = daemon.daemon.trigger(daemon.env.name, "manual")
    got = _events(f"{daemon.base}/api/runs/{run.id}/events", 1000)

    names = [name for name, _ in got]
    assert names[-1] == "done" and got[-1][1]["state"] == "succeeded" and got[-1][1]["id"] == run.id
    assert "progress" in names and names.index("progress") < names.index("done")
    assert [data["seq"] for name, data in got if name == "progress"] == sorted(
        {data["seq"] for name, data in got if name == "progress"})


def test_with_a_read_token_the_views_and_streams_need_it(
        repo: GitRepo, tmp_path: Path, kubeconfig: Path) -> None:
    env = load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])]))
    factory = default_engine_factory(tmp_path / "cache", kubeconfig)
    with running_daemon([env], factory, settings=QUIET, read_token="reader") as d:
        paths = [f"/api/objects?env={env.name}&stack=app", f"/api/object?env={env.name}&stack=app&id=x",
                 "/api/events"]
        refused = [requests.get(d.base + p, timeout=10).status_code for p in paths]
        plan = requests.post(f"{d.base}/api/plan", json={"env": env.name}, timeout=10).status_code
        allowed = requests.get(d.base + paths[0], headers={"Authorization": "Bearer reader"}, timeout=30).status_code

    assert refused == [401, 401, 401] and plan == 401 and allowed == 200
