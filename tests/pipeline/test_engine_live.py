"""An engine with the live cache: passes read the watches instead of listing, health ends on events."""

from __future__ import annotations

import pytest

from helpers import wait_for
from manifests import configmap, deployment, make_env, write_stack
from reconciler.objects import ObjectId
from reconciler.results import StackState

pytestmark = pytest.mark.cluster


def test_a_pass_on_a_warm_cache_makes_no_list_request(repo, engine_for, tmp_path, namespace) -> None:
    write_stack(repo, "app", [configmap(f"cm-{i}", namespace, {"i": str(i)}) for i in range(5)]
                + [deployment("web", namespace)])
    repo.commit("five configmaps and a deployment")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    live = engine.enable_live_cache()
    engine.sync()
    assert live.wait_synced(30)
    engine.sync()

    warm = engine.sync()

    assert warm.stacks[0].state is StackState.UNCHANGED
    assert "list" not in warm.api_requests, warm.api_requests
    assert warm.api_requests == {"get": 1, "update": 2}  # the inventory; the writer lease taken and given back


def test_a_git_change_on_a_warm_cache_is_applied_with_no_list(repo, engine_for, tmp_path, namespace,
                                                              api_client) -> None:
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    repo.commit("blue")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.enable_live_cache()
    engine.sync()
    assert engine.live.wait_synced(30)
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "green"})])
    repo.commit("green")

    result = engine.sync()

    assert [c.action.value for c in result.stacks[0].changed] == ["update"]
    assert "list" not in result.api_requests, result.api_requests
    assert wait_for(lambda: engine.object_drift(ObjectId("", "ConfigMap", namespace, "settings")) == [],
                    timeout_s=10, what="the cache to hold the applied object") is not None


def test_one_drifted_object_is_checked_and_corrected_alone(repo, engine_for, tmp_path, namespace, api_client) -> None:
    from kubernetes import client

    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"}), configmap("other", namespace, {})])
    repo.commit("blue")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.enable_live_cache()
    engine.sync()
    assert engine.live.wait_synced(30)
    core = client.CoreV1Api(api_client)
    core.patch_namespaced_config_map("settings", namespace, {"data": {"mode": "red"}})
    oid = ObjectId("", "ConfigMap", namespace, "settings")
    [item] = wait_for(lambda: engine.object_drift(oid), timeout_s=10, what="the edit to reach the cache")
    assert [(f.path, f.desired, f.live) for f in item.fields] == [("data.mode", "blue", "red")]
    engine.cluster.reset_counts()

    assert engine.correct_object(oid) == ""

    assert core.read_namespaced_config_map("settings", namespace).data == {"mode": "blue"}
    requests = engine.cluster.request_counts()
    assert requests.get("list", 0) == 0 and requests["patch"] == 2  # one dry-run, one apply


def test_a_stack_planned_again_for_a_git_change_also_corrects_a_live_edit_of_another_object(
        repo, engine_for, tmp_path, namespace, api_client) -> None:
    """The other object was found unchanged by the pass before, against an older live version."""
    from kubernetes import client

    def commit(version: str) -> None:
        write_stack(repo, "app", [configmap("changing", namespace, {"v": version}),
                                  configmap("kept", namespace, {"k": "blue"})])
        repo.commit(f"v{version}")

    commit("1")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.enable_live_cache()
    engine.sync()
    assert engine.live.wait_synced(30)
    commit("2")
    engine.sync()
    core = client.CoreV1Api(api_client)
    core.patch_namespaced_config_map("kept", namespace, {"data": {"k": "red"}})
    wait_for(lambda: engine.object_drift(ObjectId("", "ConfigMap", namespace, "kept")), timeout_s=10,
             what="the edit to reach the cache")
    commit("3")

    result = engine.sync()

    assert sorted(str(c.id) for c in result.stacks[0].changed) == [
        f"core/ConfigMap/{namespace}/changing", f"core/ConfigMap/{namespace}/kept"]
    assert core.read_namespaced_config_map("kept", namespace).data == {"k": "blue"}


def test_a_burst_of_objects_is_judged_with_one_inventory_read_and_no_list(
        repo, engine_for, tmp_path, namespace, api_client) -> None:
    from kubernetes import client

    write_stack(repo, "app", [configmap(f"cm-{i}", namespace, {"mode": "blue"}) for i in range(40)])
    write_stack(repo, "db", [configmap(f"db-{i}", namespace, {"mode": "blue"}) for i in range(10)])
    repo.commit("fifty settings in two stacks")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"},
                                                              {"name": "db", "path": "stacks/db"}]))
    engine.enable_live_cache()
    engine.sync()
    assert engine.live.wait_synced(30)
    core = client.CoreV1Api(api_client)
    core.patch_namespaced_config_map("cm-7", namespace, {"data": {"mode": "red"}})
    core.patch_namespaced_config_map("db-3", namespace, {"data": {"mode": "red"}})
    burst = [ObjectId("", "ConfigMap", namespace, f"cm-{i}") for i in range(40)] + \
        [ObjectId("", "ConfigMap", namespace, f"db-{i}") for i in range(10)]
    wait_for(lambda: engine.object_drift(burst[7]) and engine.object_drift(burst[43]), timeout_s=10,
             what="both edits to reach the cache")
    engine.cluster.reset_counts()

    found = engine.objects_drift(burst)

    assert {str(oid) for oid, items in found.items() if items} == {str(burst[7]), str(burst[43])}
    assert [(f.path, f.live) for f in found[burst[7]][0].fields] == [("data.mode", "red")]
    assert engine.cluster.request_counts() == {"get": 1, "patch": 2}  # the inventory; a dry run per drifted one


def test_a_stack_nothing_touched_is_not_planned_again_on_a_warm_cache(repo, engine_for, tmp_path, namespace,
                                                                     api_client) -> None:
    from kubernetes import client

    write_stack(repo, "quiet", [configmap("quiet", namespace, {"v": "1"})])
    write_stack(repo, "busy", [configmap("busy", namespace, {"v": "1"})])
    repo.commit("two stacks")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "quiet", "path": "stacks/quiet"},
                                                             {"name": "busy", "path": "stacks/busy"}]))
    engine.enable_live_cache()
    engine.sync()
    assert engine.live.wait_synced(30)
    wait_for(lambda: _planned(engine) == set(), timeout_s=30, what="the events of the first apply to settle")
    client.CoreV1Api(api_client).patch_namespaced_config_map("busy", namespace, {"metadata": {"labels": {"x": "y"}}})
    write_stack(repo, "quiet", [configmap("quiet", namespace, {"v": "1"})])  # same render: nothing changed

    planned = wait_for(lambda: _planned(engine) or None, timeout_s=30, what="a pass that plans the touched stack")

    assert planned == {"busy"}


def _planned(engine) -> set[str]:
    """The stacks a pass planned (the others were settled: nothing changed since their last clean pass)."""
    seen: set[str] = set()
    engine.sync(progress=lambda e: seen.add(e.stack) if e.phase == "plan" else None)
    return seen


def test_a_dependent_starts_only_after_the_watch_shows_its_dependency_rolled_out(repo, engine_for, tmp_path,
                                                                               namespace) -> None:
    """Health right after an apply must not trust the cached state from before it (a Deployment that was
    ready on the old template), and must end on the event that shows the new rollout done."""
    import time

    from reconciler.kube.health import deployment_ready

    def commit(version: int) -> None:
        db = deployment("db", namespace, replicas=2)
        db["spec"]["template"]["metadata"]["annotations"] = {"version": str(version)}
        write_stack(repo, "db", [db])
        write_stack(repo, "app", [configmap("app", namespace, {"version": str(version)})])
        repo.commit(f"version {version}")

    commit(0)
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "db", "path": "stacks/db"},
                                                             {"name": "app", "path": "stacks/app",
                                                              "dependsOn": ["db"]}]))
    engine.enable_live_cache()
    engine.sync()
    assert engine.live.wait_synced(30)
    commit(1)
    ready: list[float] = []
    engine.live.subscribe(lambda e: ready.append(time.monotonic()) if e.key.kind == "Deployment" and e.object
                          and deployment_ready(e.object) is None else None)
    planned: list[float] = []

    result = engine.sync(progress=lambda e: planned.append(time.monotonic()) if (e.stack, e.phase) == ("app", "plan")
                         else None)

    assert result.ok, result
    assert ready and planned and ready[0] <= planned[0]


def test_a_kind_added_to_or_removed_from_git_starts_or_stops_its_watch(repo, engine_for, tmp_path, namespace) -> None:
    from reconciler.kube.livecache import WatchKey

    write_stack(repo, "app", [configmap("settings", namespace, {"v": "1"})])
    repo.commit("a configmap")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.enable_live_cache()
    engine.sync()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": namespace},
              "stringData": {"k": "v"}}
    write_stack(repo, "app", [configmap("settings", namespace, {"v": "1"}), secret])
    repo.commit("and a secret")

    engine.sync()
    with_secret = set(engine.live.watches)
    write_stack(repo, "app", [secret])
    repo.commit("no configmap any more")
    engine.sync()

    assert with_secret == {WatchKey("v1", "ConfigMap", namespace), WatchKey("v1", "Secret", namespace)}
    assert set(engine.live.watches) == {WatchKey("v1", "Secret", namespace)}
