"""Suspend and resume: a suspended environment or stack is neither applied, pruned nor corrected, its
dependents wait, drift is still reported, and the suspension (who, why) is kept in the cluster."""

from __future__ import annotations

import pytest

from scenario import Scenario, configmap

pytestmark = pytest.mark.cluster


def _app_and_edge(scenario: Scenario, version: str, with_old: bool = True) -> None:
    ns = scenario.namespace
    scenario.stack("app", [configmap("settings", ns, {"v": version})] + ([configmap("old", ns, {"v": "1"})]
                                                                          if with_old else []))
    scenario.stack("edge", [configmap("edge", ns, {"v": version})], depends_on=("app",))


def _synced_then_changed(scenario: Scenario) -> None:
    _app_and_edge(scenario, "1")
    scenario.commit("v1")
    assert scenario.run("sync").code == 1
    _app_and_edge(scenario, "2", with_old=False)
    scenario.commit("v2, old removed")


def test_a_suspended_stack_is_neither_applied_nor_pruned_and_its_dependents_wait(scenario: Scenario) -> None:
    _synced_then_changed(scenario)
    suspend = scenario.run("suspend", "--stack", "app", "--reason", "incident 42", "--by", "alice")

    sync = scenario.run("sync", "-o", "json")

    assert suspend.code == 0 and "suspended by alice" in suspend.out, suspend.out + suspend.err
    assert sync.code == 0, sync.out + sync.err
    states = {s["stack"]: (s["state"], s["reason"]) for s in sync.json["stacks"]}
    assert states["app"][0] == "suspended" and "suspended by alice" in states["app"][1] and "incident 42" in states["app"][1]
    assert states["edge"] == ("suspended", "waits on suspended stack 'app'")
    assert scenario.live("configmap", "settings")["data"] == {"v": "1"}
    assert scenario.live("configmap", "old") is not None and scenario.live("configmap", "edge")["data"] == {"v": "1"}


def test_resume_lets_the_next_sync_apply_and_prune_what_was_held(scenario: Scenario) -> None:
    _synced_then_changed(scenario)
    scenario.run("suspend", "--stack", "app", "--reason", "incident 42")
    scenario.run("sync")

    resume = scenario.run("resume", "--stack", "app")
    sync = scenario.run("sync")

    assert resume.code == 0, resume.out + resume.err
    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "settings")["data"] == {"v": "2"} and scenario.live("configmap", "old") is None
    assert scenario.live("configmap", "edge")["data"] == {"v": "2"}


def test_drift_in_a_suspended_stack_is_reported_and_not_corrected(scenario: Scenario) -> None:
    scenario.write_env(correctDrift=True)
    _app_and_edge(scenario, "1")
    scenario.commit("v1")
    scenario.run("sync")
    scenario.run("suspend", "--stack", "app", "--reason", "hand-tuning during the incident")
    scenario.kubectl("-n", scenario.namespace, "patch", "configmap", "settings", "--type=merge",
                     "-p", '{"data": {"v": "by-hand"}}')

    drift = scenario.run("drift", "-o", "json")
    scenario.run("sync")

    assert drift.code == 1 and [i["id"].rsplit("/", 1)[-1] for i in drift.json["items"]] == ["settings"]
    assert scenario.live("configmap", "settings")["data"] == {"v": "by-hand"}


def test_a_suspended_environment_holds_every_stack_and_status_names_who_and_why(scenario: Scenario) -> None:
    _synced_then_changed(scenario)
    scenario.run("suspend", "--reason", "release freeze", "--by", "bob")

    sync = scenario.run("sync", "-o", "json")
    status = scenario.run("status")
    status_json = scenario.run("status", "-o", "json").json

    assert {s["state"] for s in sync.json["stacks"]} == {"suspended"}
    assert scenario.live("configmap", "settings")["data"] == {"v": "1"}
    assert "environment suspended by bob" in status.out and "release freeze" in status.out
    assert "release freeze" in status_json["suspended"]
    assert all("release freeze" in s["suspended"] for s in status_json["stacks"])
    assert scenario.run("resume").code == 0 and scenario.run("sync").code == 1
    assert scenario.live("configmap", "settings")["data"] == {"v": "2"}


def test_a_suspend_without_a_reason_and_a_resume_of_nothing_are_refused(scenario: Scenario) -> None:
    _app_and_edge(scenario, "1")
    scenario.commit("v1")
    scenario.run("sync")

    resume = scenario.run("resume", "--stack", "app")
    empty = scenario.run("suspend", "--reason", "  ")

    assert resume.code == 2 and "stack 'app'" in resume.err and "is not suspended" in resume.err
    assert empty.code == 2 and "names who and why" in empty.err
