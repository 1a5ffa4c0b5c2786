"""Git is the truth, field for field: what Git adds, changes or removes lands; drift is about our fields only."""

from __future__ import annotations

import json

import pytest

from scenario import Scenario, annotations_of, configmap, deployment, labels_of

pytestmark = pytest.mark.cluster


def test_a_label_removed_from_git_is_removed_from_the_live_object(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"a": "1"}, labels={"team": "x", "tier": "web"})])
    scenario.commit("labelled")
    assert scenario.run("sync").code == 1
    scenario.stack("app", [configmap("settings", scenario.namespace, {"a": "1"}, labels={"tier": "web"})])
    scenario.commit("drop the team label")

    plan = scenario.run("plan")

    assert plan.code == 1, plan.out + plan.err
    assert "~ app: core/ConfigMap/" in plan.out
    assert '- metadata.labels.team: x' in plan.out
    assert labels_of(scenario.live("configmap", "settings")).get("team") == "x"  # plan changes nothing

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    live = labels_of(scenario.live("configmap", "settings"))
    assert "team" not in live and live["tier"] == "web"
    assert scenario.run("plan").code == 0


def test_an_annotation_removed_from_git_is_removed_from_the_live_object(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"a": "1"}, annotations={"note": "old"})])
    scenario.commit("annotated")
    scenario.run("sync")
    scenario.stack("app", [configmap("settings", scenario.namespace, {"a": "1"})])
    scenario.commit("no annotation")

    sync = scenario.run("sync", "-o", "json")

    [change] = [c for s in sync.json["stacks"] for c in s["changes"]]
    assert change["action"] == "update"
    assert {"path": "metadata.annotations.note", "desired": None, "live": "old"} in change["fields"]
    assert "note" not in annotations_of(scenario.live("configmap", "settings"))


def test_a_container_lifecycle_block_removed_from_git_is_removed_from_the_live_deployment(scenario: Scenario) -> None:
    pre_stop = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    scenario.stack("app", [deployment("web", scenario.namespace, lifecycle=pre_stop)])
    scenario.commit("with preStop")
    scenario.run("sync")
    scenario.stack("app", [deployment("web", scenario.namespace)])
    scenario.commit("without preStop")

    plan = scenario.run("plan")
    sync = scenario.run("sync")

    assert plan.code == 1 and "- spec.template.spec.containers[main].lifecycle" in plan.out, plan.out
    assert sync.code == 1, sync.out + sync.err
    [container] = scenario.live("deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert "lifecycle" not in container


def test_a_removed_environment_variable_is_removed(scenario: Scenario) -> None:
    scenario.stack("app", [deployment("web", scenario.namespace, env=[{"name": "A", "value": "1"},
                                                                      {"name": "B", "value": "2"}])])
    scenario.commit("two variables")
    scenario.run("sync")
    scenario.stack("app", [deployment("web", scenario.namespace, env=[{"name": "A", "value": "1"}])])
    scenario.commit("one variable")

    assert scenario.run("sync").code == 1

    [container] = scenario.live("deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "A", "value": "1"}]


def test_a_map_emptied_in_git_is_emptied_in_the_cluster(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"a": "1", "b": "2"})])
    scenario.commit("two keys")
    scenario.run("sync")
    scenario.stack("app", [configmap("settings", scenario.namespace, {})])
    scenario.commit("no keys")

    plan = scenario.run("plan")
    sync = scenario.run("sync")

    assert "- data.a: 1" in plan.out and "- data.b: 2" in plan.out, plan.out
    assert sync.code == 1
    assert not scenario.live("configmap", "settings").get("data")


def test_an_explicit_null_in_git_removes_the_field(scenario: Scenario) -> None:
    pre_stop = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    scenario.stack("app", [deployment("web", scenario.namespace, lifecycle=pre_stop)])
    scenario.commit("with preStop")
    scenario.run("sync")
    scenario.stack("app", [deployment("web", scenario.namespace, lifecycle=None)])
    scenario.commit("lifecycle: null")

    plan = scenario.run("plan")
    sync = scenario.run("sync")

    assert "- spec.template.spec.containers[main].lifecycle" in plan.out, plan.out
    assert sync.code == 1
    [container] = scenario.live("deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert "lifecycle" not in container


def test_a_value_that_only_changes_its_spelling_is_not_a_change(scenario: Scenario) -> None:
    resources = {"requests": {"cpu": "1000m", "memory": "1024Mi"}}
    scenario.stack("app", [deployment("web", scenario.namespace, resources=resources)])
    scenario.commit("1000m")
    scenario.run("sync")
    scenario.stack("app", [deployment("web", scenario.namespace, resources={"requests": {"cpu": "1", "memory": "1Gi"}})])
    scenario.commit("1 CPU, spelled differently")

    plan = scenario.run("plan")
    sync = scenario.run("sync", "-o", "json")

    assert plan.code == 0, plan.out
    assert [c for s in sync.json["stacks"] for c in s["changes"] if c["action"] != "unchanged"] == []
    assert scenario.run("plan").code == 0


def test_a_field_changed_in_the_cluster_is_reported_as_drift_with_git_and_live_values(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"mode": "blue"})])
    scenario.commit("blue")
    scenario.run("sync")
    scenario.kubectl("-n", scenario.namespace, "patch", "configmap", "settings", "-p", '{"data":{"mode":"red"}}')

    drift = scenario.run("drift", "-o", "json")

    assert drift.code == 1
    [item] = drift.json["items"]
    assert item["kind"] == "modified" and item["stack"] == "app"
    assert item["fields"] == [{"path": "data.mode", "desired": "blue", "live": "red"}]


def test_a_field_we_own_that_someone_removed_is_drift(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"a": "1"}, labels={"team": "x"})])
    scenario.commit("labelled")
    scenario.run("sync")
    scenario.kubectl("-n", scenario.namespace, "label", "configmap", "settings", "team-")

    drift = scenario.run("drift", "-o", "json")

    assert drift.code == 1
    [item] = drift.json["items"]
    assert item["fields"] == [{"path": "metadata.labels.team", "desired": "x", "live": None}]


def test_fields_added_by_another_manager_are_not_drift_and_are_left_alone(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"a": "1"})], )
    scenario.write_env(correctDrift=True)
    scenario.commit("one key")
    scenario.run("sync")
    scenario.kubectl("-n", scenario.namespace, "label", "configmap", "settings", "added-by=someone-else")
    scenario.kubectl("-n", scenario.namespace, "patch", "configmap", "settings", "-p", '{"data":{"extra":"kept"}}')

    drift = scenario.run("drift")
    sync = scenario.run("sync")

    assert drift.code == 0, drift.out
    assert sync.code == 0, sync.out
    live = scenario.live("configmap", "settings")
    assert labels_of(live)["added-by"] == "someone-else" and live["data"] == {"a": "1", "extra": "kept"}


def test_correct_drift_restores_the_git_value_of_an_edited_field(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"mode": "blue"})])
    scenario.write_env(correctDrift=True)
    scenario.commit("blue")
    scenario.run("sync")
    scenario.kubectl("-n", scenario.namespace, "patch", "configmap", "settings", "-p", '{"data":{"mode":"red"}}')

    sync = scenario.run("sync")

    assert sync.code == 1
    assert scenario.live("configmap", "settings")["data"] == {"mode": "blue"}


def test_detect_only_reports_drift_and_never_reverts_it(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"mode": "blue"})])
    scenario.write_env(correctDrift=False)
    scenario.commit("blue")
    scenario.run("sync")
    scenario.kubectl("-n", scenario.namespace, "patch", "configmap", "settings", "-p", '{"data":{"mode":"red"}}')

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 0
    assert sync.json["stacks"][0]["drifted"] == 1
    assert scenario.live("configmap", "settings")["data"] == {"mode": "red"}


def test_a_steady_state_pass_costs_one_list_per_kind_and_nothing_per_object(scenario: Scenario) -> None:
    objects = [configmap(f"cm-{i}", scenario.namespace, {"i": str(i)}, labels={"n": str(i)}) for i in range(10)]
    objects += [deployment(f"web-{i}", scenario.namespace) for i in range(3)]
    scenario.stack("app", objects)
    scenario.commit("thirteen objects")
    scenario.run("sync")
    scenario.run("sync")

    again = scenario.run("sync", "-o", "json")

    assert again.code == 0
    requests = again.json["api_requests"]
    assert requests.get("list") == 2  # ConfigMaps and Deployments of one namespace
    assert requests.get("get", 0) <= 3  # the inventory, its hash key, the writer lease (a new process reads all)
    assert requests.get("update", 0) == 2  # the writer lease taken and given back
    assert requests.get("patch", 0) == 0 and requests.get("create", 0) == 0, json.dumps(requests)
