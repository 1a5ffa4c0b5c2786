"""Helm charts vendored in the repository render through kustomize, and everything that holds for plain
YAML holds for their output: plan field paths, prune, policy before apply, preview, the render cache."""

from __future__ import annotations

import pytest

from charts import chart_stack
from manifests import write_policies_enforcing_only_min_replicas
from scenario import Scenario

pytestmark = pytest.mark.cluster


def _chart_env(scenario: Scenario, values: dict | None = None, chart: dict | None = None, **stack: object) -> None:
    path = chart_stack(scenario.repo, "web", scenario.namespace, values, chart)
    scenario.stacks["web"] = {"name": "web", "path": path, **stack}
    scenario.write_env()


def test_a_vendored_chart_is_rendered_and_applied_with_its_values(scenario: Scenario) -> None:
    _chart_env(scenario, {"greeting": "hi", "replicaCount": 2})
    scenario.commit("the web chart")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "web-settings")["data"] == {"greeting": "hi"}
    assert scenario.live("deployment", "web")["spec"]["replicas"] == 2
    assert scenario.run("plan").code == 0


def test_a_changed_chart_value_is_planned_by_field_path_then_applied(scenario: Scenario) -> None:
    _chart_env(scenario, {"greeting": "hi"})
    scenario.commit("the web chart")
    assert scenario.run("sync").code == 1
    _chart_env(scenario, {"greeting": "bonjour"})
    scenario.commit("a new greeting")

    plan = scenario.run("plan")
    sync = scenario.run("sync")

    assert plan.code == 1, plan.out + plan.err
    assert "data.greeting: hi -> bonjour" in plan.out or ("data.greeting" in plan.out and "bonjour" in plan.out)
    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "web-settings")["data"] == {"greeting": "bonjour"}


def test_an_object_a_chart_value_turns_off_is_pruned(scenario: Scenario) -> None:
    _chart_env(scenario, {"extraSetting": True})
    scenario.commit("with the extra settings")
    assert scenario.run("sync").code == 1
    assert scenario.live("configmap", "web-extra") is not None
    _chart_env(scenario, {"extraSetting": False})
    scenario.commit("without them")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "web-extra") is None
    assert scenario.live("configmap", "web-settings") is not None


def test_drift_in_a_chart_object_is_reported_with_gits_and_the_live_value(scenario: Scenario) -> None:
    _chart_env(scenario, {"greeting": "hi"})
    scenario.commit("the web chart")
    scenario.run("sync")
    scenario.kubectl("-n", scenario.namespace, "patch", "configmap", "web-settings", "--type", "merge",
                     "-p", '{"data": {"greeting": "tampered"}}')

    drift = scenario.run("drift", "-o", "json")

    assert drift.code == 1, drift.out + drift.err
    [item] = drift.json["items"]
    assert item["fields"] == [{"path": "data.greeting", "desired": "hi", "live": "tampered"}]


def test_a_chart_deployment_below_min_replicas_is_refused_before_apply_naming_the_chart(scenario: Scenario) -> None:
    write_policies_enforcing_only_min_replicas(scenario.repo, 2)
    _chart_env(scenario, {"replicaCount": 1})
    scenario.commit("one replica through the chart")

    sync = scenario.run("sync")

    assert sync.code == 2, sync.out + sync.err
    text = sync.out + sync.err
    assert "min-replicas" in text and "webapp-0.1.0" in text and "1" in text
    assert scenario.live("deployment", "web") is None and scenario.live("configmap", "web-settings") is None


def test_a_chart_that_is_not_vendored_is_refused_with_the_command_that_vendors_it(scenario: Scenario) -> None:
    _chart_env(scenario, chart={"name": "ingress", "repo": "https://charts.example.invalid", "version": "4.1.0"})
    scenario.commit("a chart from a remote repository")

    sync = scenario.run("sync")

    assert sync.code == 2, sync.out + sync.err
    assert "Helm chart 'ingress' 4.1.0" in sync.err and "not vendored" in sync.err
    assert "helm pull ingress --repo https://charts.example.invalid --version 4.1.0" in sync.err
    assert scenario.live("deployment", "web") is None


def test_a_preview_of_a_branch_that_bumps_a_chart_value_shows_the_field_change(scenario: Scenario) -> None:
    scenario.env_file = scenario.repo.work_path / "environments" / f"{scenario.name}.yaml"
    scenario.source_options["url"] = ""
    _chart_env(scenario, {"greeting": "hi"})
    scenario.commit("the web chart")
    assert scenario.run("sync").code == 1
    scenario.repo.repo.git.checkout("-b", "bump")
    _chart_env(scenario, {"greeting": "hola", "replicaCount": 3})
    scenario.repo.repo.git.add(A=True)
    scenario.repo.repo.index.commit("bump the greeting and the replicas")

    data = scenario.run("preview", "--revision", "bump", "-o", "json").json

    [stack] = data["stacks"]
    fields = {(f["path"], f["live"], f["desired"]) for change in stack["changed"] for f in change["fields"]}
    assert ("data.greeting", "hi", "hola") in fields and ("spec.replicas", 1, 3) in fields


def test_a_chart_value_that_never_becomes_healthy_is_rolled_back_to_the_last_healthy_values(scenario: Scenario) -> None:
    _chart_env(scenario, {"greeting": "hi"}, healthTimeout="4s")
    scenario.commit("healthy values")
    assert scenario.run("sync").code == 1
    _chart_env(scenario, {"greeting": "bye", "nodeSelector": {"conformance.test/no-such-node": "true"}},
               healthTimeout="4s")
    scenario.commit("values whose pods cannot be scheduled")
    assert scenario.run("sync").code == 2

    rollback = scenario.run("rollback", "--stack", "web")

    assert rollback.code == 0, rollback.out + rollback.err
    assert scenario.live("configmap", "web-settings")["data"] == {"greeting": "hi"}
    assert "nodeSelector" not in scenario.live("deployment", "web")["spec"]["template"]["spec"]
