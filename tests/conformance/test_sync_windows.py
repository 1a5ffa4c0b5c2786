"""Sync windows: outside an allowed window (or inside a deny window) nothing is applied, drift is
reported, a manual sync goes through only where the window allows it, and status names the windows."""

from __future__ import annotations

import pytest

from scenario import Scenario, configmap

pytestmark = pytest.mark.cluster

ALWAYS_DENIED = {"kind": "deny", "schedule": "* * * * *", "duration": "5m"}  # a window opens every minute for 5 min
NEVER_ALLOWED = {"kind": "allow", "schedule": "0 0 29 2 *", "duration": "1m"}  # only on the 29th of February


def _changed_while(scenario: Scenario, window: dict) -> None:
    ns = scenario.namespace
    scenario.stack("app", [configmap("settings", ns, {"v": "1"})])
    scenario.stack("edge", [configmap("edge", ns, {"v": "1"})], depends_on=("app",))
    scenario.commit("v1")
    assert scenario.run("sync").code == 1
    scenario.env_extra["syncWindows"] = [window]
    scenario.stack("app", [configmap("settings", ns, {"v": "2"})])
    scenario.commit("v2")


def test_a_deny_window_holds_every_stack_and_a_manual_sync_it_does_not_allow(scenario: Scenario) -> None:
    _changed_while(scenario, ALWAYS_DENIED)

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 0, sync.out + sync.err
    states = {s["stack"]: (s["state"], s["reason"]) for s in sync.json["stacks"]}
    assert states["app"] == ("held", "held by deny window deny '* * * * *' 5m UTC")
    assert states["edge"][0] == "held"
    assert scenario.live("configmap", "settings")["data"] == {"v": "1"}


def test_a_window_with_manual_sync_lets_a_manual_sync_through(scenario: Scenario) -> None:
    _changed_while(scenario, {**ALWAYS_DENIED, "manualSync": True})

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "settings")["data"] == {"v": "2"}


def test_outside_every_allow_window_nothing_is_applied_and_plan_says_why(scenario: Scenario) -> None:
    _changed_while(scenario, NEVER_ALLOWED)

    plan = scenario.run("plan")
    sync = scenario.run("sync", "-o", "json")

    assert "outside every allow window" in plan.out and "a sync would not apply it" in plan.out
    assert {s["state"] for s in sync.json["stacks"]} == {"held"}
    assert scenario.live("configmap", "settings")["data"] == {"v": "1"}


def test_a_window_covering_one_stack_holds_it_and_its_dependents_only(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("base", [configmap("base", ns, {"v": "1"})])
    _changed_while(scenario, {**ALWAYS_DENIED, "stacks": ["edge"]})
    scenario.stack("base", [configmap("base", ns, {"v": "2"})])
    scenario.commit("base v2 too")

    sync = scenario.run("sync", "-o", "json")

    states = {s["stack"]: s["state"] for s in sync.json["stacks"]}
    assert states == {"base": "applied", "app": "applied", "edge": "held"}, sync.out
    assert scenario.live("configmap", "base")["data"] == {"v": "2"}


def test_status_shows_each_window_and_when_it_ends_or_opens(scenario: Scenario) -> None:
    _changed_while(scenario, ALWAYS_DENIED)
    scenario.env_extra["syncWindows"] = [ALWAYS_DENIED, NEVER_ALLOWED]
    scenario.write_env()

    status = scenario.run("status", "-o", "json").json

    [deny, allow] = status["windows"]
    assert deny.startswith("deny '* * * * *' 5m UTC: active until ")
    assert allow.startswith("allow '0 0 29 2 *' 1m UTC: next at 2028-02-29T00:00")


def test_a_schedule_that_is_not_cron_is_a_configuration_error(scenario: Scenario) -> None:
    _changed_while(scenario, {"kind": "deny", "schedule": "every night", "duration": "1h"})

    validate = scenario.run_validate()

    assert validate.code == 2 and "is not a 5-field cron expression" in validate.err
