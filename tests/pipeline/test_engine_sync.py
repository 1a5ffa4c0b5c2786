"""A reconcile pass, end to end: a real Git remote, real kustomize, the real API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from manifests import configmap, deployment, kustomization, make_env, write_policies_enforcing_only_min_replicas, write_stack
from reconciler.results import Action, StackState

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.cluster


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


def test_a_first_sync_into_a_namespace_the_stack_creates_applies_it_then_dry_runs_and_applies_each_object(
        repo, engine_for, tmp_path, namespace, api_client):
    fresh = f"{namespace}-new"
    write_stack(repo, "app", [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fresh}}]
                + [configmap(f"cm-{i}", fresh, {"i": str(i)}) for i in range(5)])
    repo.commit("a namespace and five configmaps in it")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    try:
        result = engine.sync()

        assert result.ok, result
        # the Namespace's dry run and apply, then each ConfigMap's dry run and apply, the stack's record
        assert result.api_requests["patch"] == 1 + 1 + 5 + 5 + 1
        assert [read_configmap(api_client, fresh, f"cm-{i}") for i in range(5)] == [{"i": str(i)} for i in range(5)]
    finally:
        client.CoreV1Api(api_client).delete_namespace(fresh)


def test_a_plan_into_a_namespace_the_stack_creates_reads_nothing_inside_that_absent_namespace(
        repo, engine_for, tmp_path, namespace):
    fresh = f"{namespace}-unread"
    write_stack(repo, "app", [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fresh}},
                              configmap("one", fresh, {"a": "b"}), deployment("web", fresh)])
    repo.commit("a namespace, a configmap and a deployment in it")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))

    result = engine.plan()

    assert result.ok, result
    assert [c.action for c in result.stacks[0].changes] == [Action.CREATE] * 3
    # the Namespace's labelled LIST and its GET (and the inventory's ConfigMap and key Secret): no LIST or GET
    # of the ConfigMap or the Deployment in it (two LISTs and two GETs more before)
    assert (result.api_requests.get("list", 0), result.api_requests.get("get", 0)) == (1, 1 + 2)


def test_a_plan_into_a_namespace_the_stack_creates_says_it_could_not_dry_run_the_objects_in_it(
        repo, engine_for, tmp_path, namespace):
    fresh = f"{namespace}-planned"
    write_stack(repo, "app", [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fresh}},
                              configmap("one", fresh, {"a": "b"}), configmap("two", fresh, {"a": "b"})])
    repo.commit("a namespace and two configmaps in it")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))

    [stack] = engine.plan().stacks

    assert stack.state is StackState.PLANNED
    assert [c.action for c in stack.changes] == [Action.CREATE] * 3
    assert stack.reason.startswith(f"2 new object(s) in Namespace {fresh} not dry-run")


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
    assert again.api_requests.get("update", 0) == 2  # the writer lease taken and given back
    print(f"steady-state pass of 5 objects: {again.total_requests} API requests {again.api_requests}")


def test_a_git_change_to_one_object_of_a_stack_is_applied_without_a_dry_run(
        repo, engine_for, tmp_path, namespace, api_client):
    write_stack(repo, "app", [configmap(f"cm-{i}", namespace, {"i": str(i)}) for i in range(3)])
    repo.commit("three configmaps")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.sync()
    write_stack(repo, "app", [configmap(f"cm-{i}", namespace, {"i": "new" if i == 1 else str(i)}) for i in range(3)])
    repo.commit("one configmap changes")

    result = engine.sync()

    assert result.stacks[0].state is StackState.APPLIED
    assert result.api_requests["patch"] == 1 + 1  # its apply (no dry run), the stack's record in the inventory
    assert [(c.id.name, c.action, [f.path for f in c.fields]) for c in result.stacks[0].changed] == [
        ("cm-1", Action.UPDATE, ["data.i"])]
    assert read_configmap(api_client, namespace, "cm-1") == {"i": "new"}


def test_a_rejected_single_change_applies_nothing_and_fails_as_its_dry_run_does(
        repo, engine_for, tmp_path, namespace, api_client):
    write_stack(repo, "app", [configmap("frozen", namespace, {"v": "1"}) | {"immutable": True},
                              configmap("other", namespace, {"v": "1"})])
    repo.commit("an immutable configmap")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.sync()
    write_stack(repo, "app", [configmap("frozen", namespace, {"v": "2"}) | {"immutable": True},
                              configmap("other", namespace, {"v": "1"})])
    repo.commit("change what cannot change")
    planned = engine.plan()

    result = engine.sync()

    assert result.stacks[0].state is StackState.FAILED
    assert result.stacks[0].reason == "nothing applied: " + planned.stacks[0].reason
    assert "immutable" in result.stacks[0].reason and "recreateOnImmutable" in result.stacks[0].reason
    assert read_configmap(api_client, namespace, "frozen") == {"v": "1"}


def _chain_of_three(repo, namespace: str, value: str) -> None:
    for name in ("a", "b", "c"):
        write_stack(repo, name, [configmap(f"cm-{name}", namespace, {"v": value})])


def test_a_push_to_every_stack_writes_their_records_together_before_the_pass_ends(
        repo, engine_for, tmp_path, namespace, api_client):
    _chain_of_three(repo, namespace, "1")
    repo.commit("three stacks")
    stacks = [{"name": "a", "path": "stacks/a"}, {"name": "b", "path": "stacks/b", "dependsOn": ["a"]},
              {"name": "c", "path": "stacks/c", "dependsOn": ["b"]}]
    engine = engine_for(make_env(tmp_path, repo, namespace, stacks))
    first = engine.sync()
    _chain_of_three(repo, namespace, "2")
    sha = repo.commit("every stack changes")

    result = engine.sync()

    assert first.api_requests["patch"] == 3 * 2 + 3  # a dry run and an apply each; each new record at once
    assert result.api_requests["patch"] == 3 + 1  # an apply each, their records in one write
    live = client.CoreV1Api(api_client).read_namespaced_config_map(f"reconciler-{namespace}", "healthflow-system")
    assert [json.loads(live.data[f"stack.{name}.json"])["commit"] for name in ("a", "b", "c")] == [sha] * 3


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
    assert "kustomize build of stacks/broken failed" in next(s for s in result.stacks if s.stack == "broken").reason
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


def test_a_rejected_object_of_a_kustomize_built_stack_is_named_with_its_file_without_origin_annotations(
        repo, engine_for, tmp_path, namespace, api_client):
    """Most kustomizations ask for no origin annotations, and asking in every build doubled kustomize's CPU:
    the stack is built once more, asking, only when an error must name an object."""
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad"}, "spec": {"ports": [{"port": 99999}]}}
    repo.write("stacks/app/bad.yaml", bad)
    repo.write("stacks/app/good.yaml", configmap("first", namespace, {"a": "1"}))
    repo.write("stacks/app/kustomization.yaml", kustomization("good.yaml", "bad.yaml", namespace=namespace))
    repo.commit("a Service with an impossible port, through a namespace transformer")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))

    result = engine.sync()

    assert result.stacks[0].state is StackState.FAILED
    assert f"core/Service/{namespace}/bad (stacks/app/bad.yaml): " in result.stacks[0].reason, result.stacks[0].reason
    exported = list((tmp_path).rglob("trees/*/*/stacks/app/kustomization.yaml"))
    assert exported and all("buildMetadata" not in path.read_text() for path in exported)
    assert not list(tmp_path.rglob(".locate-*"))


def test_plan_shows_changes_and_changes_nothing(repo, engine_for, tmp_path, namespace, api_client):
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    repo.commit("blue")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))

    result = engine.plan()

    assert result.stacks[0].state is StackState.PLANNED
    assert [c.action for c in result.stacks[0].changes] == [Action.CREATE]
    assert read_configmap(api_client, namespace, "settings") is None


def test_an_enforced_violation_blocks_the_stack_and_its_dependents_until_fixed(
    repo, engine_for, tmp_path, namespace, api_client
):
    write_policies_enforcing_only_min_replicas(repo)
    write_stack(repo, "first", [configmap("first", namespace, {"a": "1"})])
    write_stack(repo, "web", [deployment("web", namespace, replicas=1)])
    write_stack(repo, "last", [configmap("last", namespace, {"a": "1"})])
    repo.commit("web has one replica")
    engine = engine_for(make_env(tmp_path, repo, namespace, [
        {"name": "first", "path": "stacks/first"},
        {"name": "web", "path": "stacks/web", "dependsOn": ["first"]},
        {"name": "last", "path": "stacks/last", "dependsOn": ["web"]},
    ]))

    blocked = engine.sync()

    states = {s.stack: (s.state, s.blocked_by) for s in blocked.stacks}
    assert states == {"first": (StackState.APPLIED, []), "web": (StackState.BLOCKED, ["policy"]),
                      "last": (StackState.BLOCKED, ["web"])}
    web = next(s for s in blocked.stacks if s.stack == "web")
    assert [(v.rule, v.object, v.mode) for v in web.violations] == [
        ("min-replicas", f"apps/Deployment/{namespace}/web", "enforce")]
    assert "min-replicas" in web.reason
    assert client.AppsV1Api(api_client).list_namespaced_deployment(namespace).items == []

    write_stack(repo, "web", [deployment("web", namespace, replicas=2)])
    repo.commit("two replicas")
    fixed = engine.sync()

    assert {s.stack: s.state for s in fixed.stacks} == {
        "first": StackState.UNCHANGED, "web": StackState.APPLIED, "last": StackState.APPLIED}


def _edited_by_hand_after_a_pass(repo, engine_for, tmp_path, namespace, api_client, **env_fields):
    """An engine whose one ConfigMap (`settings`, mode blue) a pass applied and someone then set to red."""
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    repo.commit("blue")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}], **env_fields))
    engine.sync()
    client.CoreV1Api(api_client).patch_namespaced_config_map(
        "settings", namespace, {"data": {"mode": "red"}}, field_manager="kubectl-edit")
    return engine


def test_drift_is_reported_with_first_seen_and_not_reverted_when_correction_is_off(
    repo, engine_for, tmp_path, namespace, api_client
):
    engine = _edited_by_hand_after_a_pass(repo, engine_for, tmp_path, namespace, api_client, correctDrift=False)

    first = engine.drift()
    result = engine.sync()
    second = engine.drift()

    [item] = first.items
    assert (item.id.name, item.kind.value) == ("settings", "modified")
    assert [(f.path, f.desired, f.live) for f in item.fields] == [("data.mode", "blue", "red")]
    assert second.items[0].first_seen == item.first_seen
    assert "drifted (correction off)" in result.stacks[0].reason
    assert read_configmap(api_client, namespace, "settings") == {"mode": "red"}


def test_drift_is_reverted_when_correction_is_on(repo, engine_for, tmp_path, namespace, api_client):
    engine = _edited_by_hand_after_a_pass(repo, engine_for, tmp_path, namespace, api_client)

    result = engine.sync()

    assert result.stacks[0].state is StackState.APPLIED
    assert read_configmap(api_client, namespace, "settings") == {"mode": "blue"}
    assert engine.drift().items == []


def test_the_drift_check_right_after_a_pass_reads_the_passs_inventory_and_a_later_one_reads_it_again(
        repo, engine_for, tmp_path, namespace, api_client):
    engine = _edited_by_hand_after_a_pass(repo, engine_for, tmp_path, namespace, api_client, correctDrift=False)
    engine.cluster.reset_counts()

    right_after = engine.drift()
    reads_right_after = engine.cluster.request_counts().get("get", 0)
    later = engine.drift()

    assert [i.id.name for i in right_after.items] == [i.id.name for i in later.items] == ["settings"]
    assert reads_right_after == 0
    assert engine.cluster.request_counts().get("get", 0) == 1  # the inventory, read for the later check


def test_dependents_wait_until_the_stack_is_healthy(repo, engine_for, tmp_path, namespace, api_client):
    write_stack(repo, "workload", [deployment("web", namespace, replicas=2)])
    write_stack(repo, "after", [configmap("after", namespace, {"a": "1"})])
    repo.commit("workload then config")
    engine = engine_for(make_env(tmp_path, repo, namespace, [
        {"name": "workload", "path": "stacks/workload"},
        {"name": "after", "path": "stacks/after", "dependsOn": ["workload"]},
    ]))
    seen: list[tuple[str, str]] = []

    result = engine.sync(progress=lambda e: seen.append((e.stack, e.phase)) if e.stack else None)

    assert result.ok
    assert seen.index(("workload", "health")) < seen.index(("after", "plan"))
    status = client.AppsV1Api(api_client).read_namespaced_deployment_status("web", namespace).status
    assert status.available_replicas == 2


def _stack_then_dependent(repo, engine_for, tmp_path, namespace: str, objects: list[dict], message: str,
                          health_timeout: str):
    """An engine for stack `first` (these objects, this health timeout) and stack `after`, which depends on it."""
    write_stack(repo, "first", objects)
    write_stack(repo, "after", [configmap("after", namespace, {"a": "1"})])
    repo.commit(message)
    return engine_for(make_env(tmp_path, repo, namespace, [
        {"name": "first", "path": "stacks/first", "healthTimeout": health_timeout},
        {"name": "after", "path": "stacks/after", "dependsOn": ["first"]},
    ]))


def test_a_stack_that_never_gets_healthy_fails_and_blocks_its_dependents(
    repo, engine_for, tmp_path, namespace, api_client
):
    unschedulable = deployment("huge", namespace, replicas=1)
    unschedulable["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "64"}}
    engine = _stack_then_dependent(repo, engine_for, tmp_path, namespace, [unschedulable], "a pod no node can hold", "3s")

    result = engine.sync()

    workload, after = result.stacks
    assert workload.state is StackState.FAILED and workload.healthy is False
    assert "not healthy after 3s" in workload.reason and "Deployment" in workload.reason
    assert after.state is StackState.BLOCKED


def test_a_service_whose_pods_are_scaled_to_zero_is_healthy_and_lets_its_dependents_start(
        repo, engine_for, tmp_path, namespace):
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    engine = _stack_then_dependent(repo, engine_for, tmp_path, namespace, [deployment("web", namespace, replicas=0), service],
                                   "a service in front of no pod", "20s")

    result = engine.sync()

    assert result.ok, result.stacks[0].reason
    assert [(s.state, s.healthy) for s in result.stacks] == [(StackState.APPLIED, True)] * 2


def test_a_claim_waiting_for_its_first_consumer_is_healthy_and_lets_the_stack_that_mounts_it_start(
        repo, engine_for, tmp_path, namespace, api_client):
    storage_class = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": f"{namespace}-wffc"},
                     "provisioner": "example.test/none", "volumeBindingMode": "WaitForFirstConsumer"}
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": namespace},
             "spec": {"storageClassName": f"{namespace}-wffc", "accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}}}
    engine = _stack_then_dependent(repo, engine_for, tmp_path, namespace, [storage_class, claim],
                                   "a claim that binds with its first pod", "20s")
    try:
        result = engine.sync()

        assert result.ok, result.stacks[0].reason
        assert [(s.state, s.healthy) for s in result.stacks] == [(StackState.APPLIED, True)] * 2
        live = client.CoreV1Api(api_client).read_namespaced_persistent_volume_claim("data", namespace)
        assert live.status.phase == "Pending"
    finally:
        client.StorageV1Api(api_client).delete_storage_class(f"{namespace}-wffc")


def test_state_survives_a_new_engine_instance(repo, engine_for, tmp_path, namespace):
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    sha = repo.commit("blue")
    engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}])).sync()

    restarted = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))

    [stack] = restarted.status().stacks
    assert (stack.commit, stack.state, stack.healthy) == (sha, "applied", True)


def test_prune_never_deletes_an_object_that_is_not_labelled_as_ours(repo, engine_for, tmp_path, namespace, api_client):
    write_stack(repo, "app", [configmap("shared", namespace, {"a": "1"}), configmap("keep", namespace, {"k": "1"})])
    repo.commit("two")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.sync()
    client.CoreV1Api(api_client).patch_namespaced_config_map(  # someone else takes the object over
        "shared", namespace, {"metadata": {"labels": {"reconciler.healthflow.io/owner": "other.team"}}})
    write_stack(repo, "app", [configmap("keep", namespace, {"k": "1"})])
    repo.commit("drop shared from git")

    result = engine.sync()

    assert "not labelled as ours" in result.stacks[0].reason
    assert read_configmap(api_client, namespace, "shared") == {"a": "1"}


def test_an_unreachable_git_server_fails_the_pass_without_touching_the_cluster(engine_for, tmp_path, namespace):
    env_file = tmp_path / "env.yaml"
    env_file.write_text(yaml.safe_dump({"name": namespace, "source": {"url": str(tmp_path / "nowhere.git")},
                                        "stacks": [{"name": "app", "path": "stacks/app"}]}))

    result = engine_for(env_file).sync()

    assert not result.ok and result.stacks == []
    assert "git fetch of" in result.error and "nowhere.git" in result.error


def test_a_commit_changing_one_stack_re_renders_and_applies_only_that_stack(
    repo, engine_for, tmp_path, namespace, monkeypatch
):
    write_stack(repo, "one", [configmap("one", namespace, {"v": "1"})])
    write_stack(repo, "two", [configmap("two", namespace, {"v": "1"})])
    repo.commit("two stacks")
    engine = engine_for(make_env(tmp_path, repo, namespace, [
        {"name": "one", "path": "stacks/one"}, {"name": "two", "path": "stacks/two", "dependsOn": ["one"]}]))
    engine.sync()
    write_stack(repo, "two", [configmap("two", namespace, {"v": "2"})])
    repo.commit("change stack two")
    renders: list[str] = []
    import reconciler.pipeline.rendered as rendered_module
    original = rendered_module.build_stacks
    monkeypatch.setattr(rendered_module, "build_stacks", lambda tree, stacks, *a, **kw:
                        renders.extend(s[0] for s in stacks) or original(tree, stacks, *a, **kw))

    result = engine.sync()

    assert renders == ["two"]
    assert {s.stack: s.state for s in result.stacks} == {"one": StackState.UNCHANGED, "two": StackState.APPLIED}


def test_a_broken_commit_keeps_the_live_state_and_a_good_commit_recovers(
    repo, engine_for, tmp_path, namespace, api_client
):
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    write_stack(repo, "after", [configmap("after", namespace, {"v": "1"})])
    repo.commit("good")
    engine = engine_for(make_env(tmp_path, repo, namespace, [
        {"name": "app", "path": "stacks/app"}, {"name": "after", "path": "stacks/after", "dependsOn": ["app"]}]))
    engine.sync()
    repo.write("stacks/app/objects.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings\ndata: [")
    repo.commit("malformed YAML")

    broken = engine.sync()

    app, after = broken.stacks
    assert app.state is StackState.FAILED and "objects.yaml" in app.reason
    assert after.state is StackState.BLOCKED
    assert read_configmap(api_client, namespace, "settings") == {"mode": "blue"}

    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "green"})])
    repo.commit("fixed")
    recovered = engine.sync()

    assert recovered.ok
    assert read_configmap(api_client, namespace, "settings") == {"mode": "green"}


def test_a_hand_scaled_deployment_shows_in_drift_and_sync_restores_it(
    repo, engine_for, tmp_path, namespace, api_client
):
    write_stack(repo, "app", [deployment("web", namespace, replicas=2)])
    repo.commit("two replicas")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.sync()
    apps = client.AppsV1Api(api_client)
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})  # kubectl scale

    [item] = engine.drift().items
    engine.sync()

    assert [(f.path, f.desired, f.live) for f in item.fields] == [("spec.replicas", 2, 3)]
    assert item.first_seen is not None
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 2


def test_a_deleted_object_is_missing_drift_but_a_new_unapplied_commit_is_not(
    repo, engine_for, tmp_path, namespace, api_client
):
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    repo.commit("blue")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine.sync()
    client.CoreV1Api(api_client).delete_namespaced_config_map("settings", namespace)
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"}), configmap("new", namespace, {})])
    repo.commit("a new object, not synced yet")

    report = engine.drift()

    assert [(i.id.name, i.kind.value) for i in report.items] == [("settings", "missing")]


def _with_selector(manifest: dict, labels: dict) -> dict:
    manifest["spec"]["selector"] = {"matchLabels": labels}
    manifest["spec"]["template"]["metadata"]["labels"] = labels
    return manifest


@pytest.mark.parametrize("opt_in", [False, True])
def test_an_immutable_field_change_fails_unless_the_stack_opts_in_to_recreate(
    repo, engine_for, tmp_path, namespace, api_client, opt_in
):
    write_stack(repo, "app", [deployment("web", namespace, replicas=1)])
    repo.commit("web")
    engine = engine_for(make_env(tmp_path, repo, namespace, [
        {"name": "app", "path": "stacks/app", "recreateOnImmutable": opt_in}]))
    engine.sync()
    write_stack(repo, "app", [_with_selector(deployment("web", namespace, replicas=1), {"app": "web", "tier": "v2"})])
    repo.commit("change the selector (immutable)")

    result = engine.sync()

    selector = client.AppsV1Api(api_client).read_namespaced_deployment("web", namespace).spec.selector.match_labels
    if opt_in:
        assert result.stacks[0].state is StackState.APPLIED
        assert selector == {"app": "web", "tier": "v2"}
    else:
        assert result.stacks[0].state is StackState.FAILED
        assert "immutable" in result.stacks[0].reason
        assert selector == {"app": "web"}


def test_a_field_owned_by_another_manager_is_a_reported_conflict_when_correction_is_off(
    repo, engine_for, tmp_path, namespace, api_client
):
    write_stack(repo, "app", [configmap("shared", namespace, {"owner": "git"})])
    repo.commit("git owns the key")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}],
                                 correctDrift=False))
    engine.sync()
    from kubernetes import dynamic
    configmaps = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="ConfigMap")
    configmaps.server_side_apply(body=configmap("shared", namespace, {"owner": "operator"}),
                                 field_manager="some-operator", force_conflicts=True)
    write_stack(repo, "app", [configmap("shared", namespace, {"owner": "git-v2"})])
    repo.commit("git changes the key the operator took")

    result = engine.sync()

    [stack] = result.stacks
    assert stack.state is StackState.FAILED
    assert "some-operator" in stack.reason and "correctDrift" in stack.reason
    assert any("some-operator" in c for c in stack.conflicts)
    assert read_configmap(api_client, namespace, "shared") == {"owner": "operator"}


def test_an_unexpected_exception_in_a_pass_gives_the_writer_lease_back(
        repo, engine_for, tmp_path, namespace, api_client, monkeypatch):
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    repo.commit("add settings")
    engine = engine_for(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))

    def broken(inventory, scopes) -> None:
        raise RuntimeError("a bug in a stage")

    monkeypatch.setattr("reconciler.pipeline.syncpass.rebuild_records", broken)  # runs under the lease
    with pytest.raises(RuntimeError, match="a bug in a stage"):
        engine.sync()

    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(f"writer-{namespace}", "healthflow-system")
    assert lease.spec.holder_identity == ""
    assert not engine.writer_lease().lost()
