"""A pass that would delete most of a stack stops before deleting anything; `--allow-mass-prune` lets it through once."""

from __future__ import annotations

import pytest

from scenario import Scenario, configmap

pytestmark = pytest.mark.cluster


def _six(scenario: Scenario, keep: int, value: str = "1") -> None:
    scenario.stack("app", [configmap(f"c{i}", scenario.namespace, {"v": value}) for i in range(keep)])


def _six_synced_then_kept(scenario: Scenario, keep: int, message: str, value: str = "1") -> None:
    """Six settings synced, then a commit that keeps the first `keep` of them."""
    _six(scenario, 6)
    scenario.commit("six settings")
    assert scenario.run("sync").code == 1
    _six(scenario, keep, value)
    scenario.commit(message)


def _live(scenario: Scenario) -> list[int]:
    return [i for i in range(6) if scenario.live("configmap", f"c{i}") is not None]


def test_a_commit_that_would_prune_most_of_a_stack_is_refused_before_anything_changes(scenario: Scenario) -> None:
    _six_synced_then_kept(scenario, 1, "an overlay emptied by mistake, and one value changed", value="2")

    plan = scenario.run("plan")
    sync = scenario.run("sync")

    assert "mass prune refused" in plan.out and "sync would refuse it" in plan.out
    assert sync.code == 2, sync.out + sync.err
    assert "would delete 5 of its 6 objects (more than 50%)" in sync.out and "--allow-mass-prune" in sync.out
    assert _live(scenario) == [0, 1, 2, 3, 4, 5]
    assert scenario.live("configmap", "c0")["data"] == {"v": "1"}  # nothing of the stack was applied either


def test_sync_with_allow_mass_prune_lets_one_pass_through(scenario: Scenario) -> None:
    _six_synced_then_kept(scenario, 1, "keep one")
    assert scenario.run("sync").code == 2

    allowed = scenario.run("sync", "--allow-mass-prune")

    assert allowed.code == 1, allowed.out + allowed.err
    assert _live(scenario) == [0]


def test_a_prune_within_the_guard_goes_through(scenario: Scenario) -> None:
    _six_synced_then_kept(scenario, 3, "half of them")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert _live(scenario) == [0, 1, 2]


def test_the_guard_counts_a_stack_removed_from_the_environment(scenario: Scenario) -> None:
    _six(scenario, 6)
    scenario.stack("other", [configmap("other", scenario.namespace, {"v": "1"})])
    scenario.commit("two stacks")
    scenario.run("sync")
    del scenario.stacks["app"]
    scenario.write_env()
    scenario.commit("remove the app stack")

    refused = scenario.run("sync")
    allowed = scenario.run("sync", "--allow-mass-prune")

    assert refused.code == 2 and "mass prune refused: stack 'app' would delete 6 of its 6 objects" in refused.out
    assert allowed.code == 1, allowed.out + allowed.err
    assert scenario.live("configmap", "c0") is None and scenario.live("configmap", "other") is not None


def test_the_share_and_the_minimum_are_the_environments_to_set(scenario: Scenario) -> None:
    scenario.write_env(massPrune={"maxPercent": 90, "minObjects": 2})
    _six_synced_then_kept(scenario, 1, "keep one: 83% is within 90%")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "c5") is None
