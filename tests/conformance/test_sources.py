"""What is rendered is exactly what Git holds at one commit, and history rewrites apply cleanly."""

from __future__ import annotations

import pytest
import yaml

from scenario import Scenario, configmap

pytestmark = pytest.mark.cluster


def test_render_prints_one_yaml_document_per_object_across_stacks(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("a", [configmap("a1", ns, {"v": "1"}), configmap("a2", ns, {"v": "2"})])
    scenario.stack("b", [configmap("b1", ns, {"v": "1"}), configmap("b2", ns, {"v": "2"})], depends_on=("a",))
    scenario.commit("two stacks")

    render = scenario.run("render")

    assert render.code == 0, render.err
    documents = [d for d in yaml.safe_load_all(render.out) if d is not None]
    assert [d["metadata"]["name"] for d in documents] == ["a1", "a2", "b1", "b2"]


def test_a_force_push_to_an_older_commit_applies_the_older_state_and_prunes_what_it_no_longer_has(
        scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("app", [configmap("settings", ns, {"mode": "old"})])
    old = scenario.commit("old")
    scenario.stack("app", [configmap("settings", ns, {"mode": "new"}), configmap("added", ns, {"v": "1"})])
    scenario.commit("new")
    scenario.run("sync")
    scenario.repo.repo.git.reset("--hard", old)
    scenario.repo.repo.git.push("--force", "origin", "main")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 1
    assert sync.json["commit"]["sha"] == old
    assert scenario.live("configmap", "settings")["data"] == {"mode": "old"}
    assert scenario.live("configmap", "added") is None


def test_a_missing_branch_is_a_clear_error_and_changes_nothing(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"v": "1"})])
    scenario.commit("on main")
    scenario.run("sync")
    text = scenario.env_file.read_text().replace("branch: main", "branch: release")
    scenario.env_file.write_text(text)

    sync = scenario.run("sync")

    assert sync.code == 2
    assert "release" in sync.out + sync.err
    assert scenario.live("configmap", "settings")["data"] == {"v": "1"}
