"""A custom resource whose operator reports readiness in a field of its own is judged by the environment's
CEL health rule: its dependents wait for the rule, a failed rule fails the stack, a broken rule is a
configuration error found before any pass."""

from __future__ import annotations

import json

import pytest

from helpers import wait_for
from scenario import Scenario, configmap, crd, custom

pytestmark = pytest.mark.cluster



def _group(scenario: Scenario) -> str:
    """A group of the test's own: CRDs are cluster-wide and must not be shared between tests."""
    return f"db{scenario.namespace.rsplit('-', 1)[-1]}.health.example.com"


def _rule(scenario: Scenario, **overrides: str) -> dict:
    return {"apiVersion": f"{_group(scenario)}/v1", "kind": "Database", "current": "status.phase == 'Running'",
            "failed": "status.phase == 'Failed'", **overrides}


def _database_then_app(scenario: Scenario, rule: dict | None) -> None:
    ns = scenario.namespace
    scenario.stack("crds", [crd(_group(scenario), "Database", status_subresource=True)])
    scenario.stack("db", [custom(_group(scenario), "main", ns, kind="Database", spec={"size": 1})], depends_on=("crds",))
    scenario.stack("app", [configmap("app", ns, {"v": "1"})], depends_on=("db",))
    if rule:
        scenario.env_extra["healthCheckExprs"] = [rule]
    scenario.write_env(healthTimeout="60s")
    scenario.commit("a database and the app that needs it")


def _set_phase(scenario: Scenario, phase: str) -> None:
    scenario.kubectl("-n", scenario.namespace, "patch", f"databases.{_group(scenario)}", "main", "--subresource=status",
                     "--type=merge", "-p", json.dumps({"status": {"phase": phase}}))


def test_dependents_wait_until_the_custom_resources_health_rule_holds(scenario: Scenario) -> None:
    _database_then_app(scenario, _rule(scenario))
    sync = scenario.start("sync")
    try:
        wait_for(lambda: scenario.live(f"databases.{_group(scenario)}", "main") is not None, timeout_s=60, what="the database")
        assert sync.poll() is None and scenario.live("configmap", "app") is None  # waiting on the rule
        _set_phase(scenario, "Running")
        code = sync.wait(timeout=60)
    finally:
        sync.kill() if sync.poll() is None else None
    out, err = sync.communicate()

    assert code == 1, out + err
    assert scenario.live("configmap", "app")["data"] == {"v": "1"}


def test_a_failed_health_rule_fails_the_stack_at_once_and_holds_back_its_dependents(scenario: Scenario) -> None:
    _database_then_app(scenario, _rule(scenario))
    sync = scenario.start("sync", "-o", "json")
    try:
        wait_for(lambda: scenario.live(f"databases.{_group(scenario)}", "main") is not None, timeout_s=60, what="the database")
        _set_phase(scenario, "Failed")
        code = sync.wait(timeout=50)  # well inside the 60 s health timeout: a failed rule does not wait it out
    finally:
        sync.kill() if sync.poll() is None else None
    out, err = sync.communicate()

    assert code == 2, out + err
    stacks = {s["stack"]: s for s in json.loads(out)["stacks"]}
    assert stacks["db"]["state"] == "failed" and "failed: health rule holds" in stacks["db"]["reason"]
    assert stacks["app"]["state"] == "blocked"
    assert scenario.live("configmap", "app") is None


def test_without_a_rule_a_custom_resource_without_conditions_is_ready_at_once(scenario: Scenario) -> None:
    _database_then_app(scenario, rule=None)

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "app") is not None


def test_validate_names_the_file_and_kind_of_a_rule_that_does_not_compile(scenario: Scenario) -> None:
    _database_then_app(scenario, rule=_rule(scenario, current="status.phase == "))

    validate = scenario.run_validate()
    sync = scenario.run("sync")

    assert validate.code == 2 and sync.code == 2
    assert str(scenario.env_file) in validate.err
    assert "current expression for Database" in validate.err and "does not compile" in validate.err
    assert scenario.live(f"databases.{_group(scenario)}", "main") is None
