"""Applying: custom resources with their CRD, ownership conflicts, and nothing half-applied."""

from __future__ import annotations

import pytest

from scenario import Scenario, configmap, crd, custom

pytestmark = pytest.mark.cluster


def test_a_crd_and_its_custom_resources_in_one_stack_apply_on_the_first_sync(scenario: Scenario, group: str) -> None:
    scenario.stack("platform", [crd(group), custom(group, "first", scenario.namespace, spec={"size": 1}),
                                custom(group, "second", scenario.namespace, spec={"size": 2})])
    scenario.commit("a CRD and two widgets")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 1, sync.out + sync.err
    assert sync.json["stacks"][0]["state"] == "applied"
    assert scenario.live(f"widgets.{group}", "second")["spec"] == {"size": 2}
    assert scenario.run("sync").code == 0


def test_a_custom_resource_change_lands_like_any_other_object(scenario: Scenario, group: str) -> None:
    scenario.stack("platform", [crd(group), custom(group, "w", scenario.namespace, spec={"size": 1, "color": "red"})])
    scenario.commit("widget")
    scenario.run("sync")
    scenario.stack("platform", [crd(group), custom(group, "w", scenario.namespace, spec={"size": 3})])
    scenario.commit("bigger, no color")

    plan = scenario.run("plan")
    sync = scenario.run("sync")

    assert "~ spec.size: 1 -> 3" in plan.out and "- spec.color: red" in plan.out, plan.out
    assert sync.code == 1
    assert scenario.live(f"widgets.{group}", "w")["spec"] == {"size": 3}


def test_a_field_another_manager_owns_is_a_reported_conflict_when_correction_is_off(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"mode": "blue"})])
    scenario.write_env(correctDrift=False)
    scenario.commit("blue")
    scenario.run("sync")
    done = scenario.kubectl("-n", scenario.namespace, "patch", "configmap", "settings", "--field-manager=ops",
                            "-p", '{"data":{"mode":"red"}}')
    assert done.returncode == 0
    scenario.stack("app", [configmap("settings", scenario.namespace, {"mode": "green"})])
    scenario.commit("green")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    reason = sync.json["stacks"][0]["reason"]
    assert "conflict with another field manager" in reason and "ops" in reason and "correctDrift" in reason, reason
    assert scenario.live("configmap", "settings")["data"] == {"mode": "red"}


def test_correct_drift_takes_ownership_of_a_field_another_manager_changed(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"mode": "blue"})])
    scenario.write_env(correctDrift=True)
    scenario.commit("blue")
    scenario.run("sync")
    scenario.kubectl("-n", scenario.namespace, "patch", "configmap", "settings", "--field-manager=ops",
                     "-p", '{"data":{"mode":"red"}}')
    scenario.stack("app", [configmap("settings", scenario.namespace, {"mode": "green"})])
    scenario.commit("green")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out
    assert scenario.live("configmap", "settings")["data"] == {"mode": "green"}
