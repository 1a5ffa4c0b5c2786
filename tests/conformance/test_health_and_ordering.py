"""Stacks apply along the dependency graph, each healthy before its dependents, for any kind."""

from __future__ import annotations

import pytest

from helpers import wait_for
from scenario import Scenario, configmap, crd, custom, deployment

pytestmark = pytest.mark.cluster


def test_a_dependent_stack_starts_only_after_its_dependency_is_healthy(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("data", [deployment("db", ns, replicas=2)])
    scenario.stack("app", [deployment("web", ns)], depends_on=("data",))
    scenario.commit("two stacks")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    events = [line.split(" ", 1)[1] for line in sync.err.splitlines() if ": " in line]
    healthy_data = next(i for i, e in enumerate(events) if e.startswith("wave 0 data: done applied"))
    planning_app = next(i for i, e in enumerate(events) if e.startswith("wave 1 app: plan"))
    assert healthy_data < planning_app, events
    assert scenario.live("deployment", "db")["status"].get("availableReplicas") == 2


def test_a_custom_resource_gates_its_dependents_until_its_controller_reports_ready(scenario: Scenario,
                                                                                    group: str) -> None:
    ns = scenario.namespace
    waiting = {"conditions": [{"type": "Ready", "status": "False", "reason": "Provisioning",
                               "message": "waiting for storage"}]}
    scenario.stack("infra", [crd(group), custom(group, "store", ns, spec={"size": 1}, status=waiting)])
    scenario.stack("app", [configmap("uses-store", ns, {"a": "1"})], depends_on=("infra",))
    scenario.commit("a widget that is not ready yet")

    sync = scenario.start("sync")
    wait_for(lambda: scenario.live(f"widgets.{group}", "store"), timeout_s=60, what="the widget to be applied")
    assert scenario.live("configmap", "uses-store") is None
    scenario.kubectl("-n", ns, "patch", f"widgets.{group}", "store", "--type=merge", "--field-manager=widget-controller",
                     "-p", '{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Provisioned"}]}}')
    out, err = sync.communicate(timeout=90)

    assert sync.returncode == 1, out + err
    assert scenario.live("configmap", "uses-store") is not None


def test_a_stalled_custom_resource_fails_its_stack_and_blocks_its_dependents(scenario: Scenario, group: str) -> None:
    ns = scenario.namespace
    stalled = {"conditions": [{"type": "Stalled", "status": "True", "message": "quota exceeded"}]}
    scenario.stack("infra", [crd(group), custom(group, "store", ns, status=stalled)], healthTimeout="2s")
    scenario.stack("app", [configmap("uses-store", ns, {"a": "1"})], depends_on=("infra",))
    scenario.stack("independent", [configmap("alone", ns, {"a": "1"})])
    scenario.commit("a stalled widget")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    stacks = {s["stack"]: s for s in sync.json["stacks"]}
    assert stacks["infra"]["state"] == "failed" and "stalled: quota exceeded" in stacks["infra"]["reason"]
    assert stacks["app"]["state"] == "blocked" and stacks["app"]["blocked_by"] == ["infra"]
    assert stacks["independent"]["state"] == "applied"
    assert scenario.live("configmap", "uses-store") is None


def test_a_custom_resource_on_an_older_generation_is_not_healthy(scenario: Scenario, group: str) -> None:
    ns = scenario.namespace
    behind = {"observedGeneration": 0, "conditions": [{"type": "Ready", "status": "True"}]}
    scenario.stack("infra", [crd(group), custom(group, "store", ns, spec={"v": 1}, status=behind)], healthTimeout="2s")
    scenario.commit("a widget whose controller has not caught up")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    assert "generation 1 not observed yet" in sync.json["stacks"][0]["reason"]
