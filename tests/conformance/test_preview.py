"""Before merge: a preview shows what a branch does to an environment, from Git alone or against the cluster."""

from __future__ import annotations

import base64

import pytest

from manifests import write_policies_enforcing_only_min_replicas
from scenario import Scenario, configmap, deployment

pytestmark = pytest.mark.cluster


def _in_repo(scenario: Scenario) -> None:
    """The environment file lives in the repository (as in this project), so a branch can remove a stack."""
    scenario.env_file = scenario.repo.work_path / "environments" / f"{scenario.name}.yaml"
    scenario.source_options["url"] = ""
    scenario.write_env()


def _branch(scenario: Scenario, name: str) -> None:
    scenario.repo.repo.git.checkout("-b", name)


def _commit_on_branch(scenario: Scenario, message: str) -> str:
    scenario.repo.repo.git.add(A=True)
    scenario.repo.repo.index.commit(message)
    return scenario.repo.repo.head.commit.hexsha


def _two_stacks(scenario: Scenario) -> str:
    ns = scenario.namespace
    _in_repo(scenario)
    scenario.stack("app", [configmap("settings", ns, {"mode": "a"}), configmap("legacy", ns, {"x": "1"}),
                           deployment("web", ns)])
    scenario.stack("edge", [configmap("edge-routes", ns, {"r": "1"}), configmap("edge-tls", ns, {"t": "1"})],
                   depends_on=("app",))
    return scenario.commit("two stacks")


def test_a_preview_of_a_branch_that_removes_a_stack_lists_every_object_it_would_prune(scenario: Scenario) -> None:
    ns = scenario.namespace
    _two_stacks(scenario)
    _branch(scenario, "drop-edge")
    del scenario.stacks["edge"]
    scenario.stack("app", [configmap("settings", ns, {"mode": "b"}), deployment("web", ns)])
    _commit_on_branch(scenario, "drop the edge stack and the legacy settings")

    table = scenario.run("preview", "--revision", "drop-edge")
    markdown = scenario.run("preview", "--revision", "drop-edge", "-o", "markdown")
    data = scenario.run("preview", "--revision", "drop-edge", "-o", "json").json

    assert table.code == 1, table.out + table.err
    pruned = {stack["stack"]: sorted(c["id"] for c in stack["pruned"]) for stack in data["stacks"]}
    assert pruned == {"app": [f"core/ConfigMap/{ns}/legacy"],
                      "edge": [f"core/ConfigMap/{ns}/edge-routes", f"core/ConfigMap/{ns}/edge-tls"]}
    assert {s["stack"]: s["status"] for s in data["stacks"]} == {"app": "changed", "edge": "removed stack"}
    [change] = next(s["changed"] for s in data["stacks"] if s["stack"] == "app")
    assert [(f["path"], f["live"], f["desired"]) for f in change["fields"]] == [("data.mode", "a", "b")]
    for name in ("legacy", "edge-routes", "edge-tls"):
        assert f"- app: core/ConfigMap/{ns}/{name}" in table.out or f"- edge: core/ConfigMap/{ns}/{name}" in table.out
        assert f"`core/ConfigMap/{ns}/{name}`" in markdown.out
    assert markdown.code == 1 and "<details><summary><b>" in markdown.out and "| changes |" in markdown.out


def test_a_preview_against_the_cluster_prunes_what_the_inventory_owns_and_names_drift_the_merge_overwrites(
        scenario: Scenario) -> None:
    ns = scenario.namespace
    _two_stacks(scenario)
    assert scenario.run("sync").code == 1
    scenario.kubectl("-n", ns, "patch", "configmap", "settings", "--type", "merge", "-p", '{"data":{"mode":"by-hand"}}')
    scenario.kubectl("-n", ns, "delete", "configmap", "legacy")
    _branch(scenario, "scale")
    scenario.stack("app", [configmap("settings", ns, {"mode": "a"}), configmap("legacy", ns, {"x": "1"}),
                           deployment("web", ns, replicas=2)])
    scenario.stack("edge", [configmap("edge-routes", ns, {"r": "1"})], depends_on=("app",))
    _commit_on_branch(scenario, "two web replicas, no edge-tls")

    run = scenario.run("preview", "--revision", "scale", "--cluster", "-o", "json")

    assert run.code == 1, run.out + run.err
    stacks = {s["stack"]: s for s in run.json["stacks"]}
    assert [c["id"] for c in stacks["edge"]["pruned"]] == [f"core/ConfigMap/{ns}/edge-tls"]
    assert sorted(stacks["app"]["drift_overwritten"]) == [
        f"core/ConfigMap/{ns}/legacy: missing in the cluster, the merge's sync creates it",
        f"core/ConfigMap/{ns}/settings: data.mode is 'by-hand' live, Git has 'a'"]
    assert stacks["edge"]["waits_on"] == ["app"]
    assert scenario.live("configmap", "edge-tls") is not None, "a preview changed the cluster"
    assert scenario.live("deployment", "web")["spec"]["replicas"] == 1


def test_a_preview_with_a_new_enforced_violation_exits_2_and_masks_secret_values(scenario: Scenario) -> None:
    ns = scenario.namespace
    _two_stacks(scenario)
    write_policies_enforcing_only_min_replicas(scenario.repo, 1)
    scenario.write_env()  # the repository has policies now: the environment no longer turns them off
    scenario.commit("policy")
    _branch(scenario, "secret")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns},
              "data": {"password": base64.b64encode(b"hunter2-not-for-prs").decode()}}
    write_policies_enforcing_only_min_replicas(scenario.repo, 2)
    scenario.stack("app", [configmap("settings", ns, {"mode": "a"}), configmap("legacy", ns, {"x": "1"}),
                           deployment("web", ns), secret])
    _commit_on_branch(scenario, "a secret, and two replicas required")

    markdown = scenario.run("preview", "--revision", "secret", "-o", "markdown")

    assert markdown.code == 2, markdown.out + markdown.err
    assert "1 (1 enforced)" in markdown.out and "min-replicas" in markdown.out
    assert "hunter2" not in markdown.out and base64.b64encode(b"hunter2-not-for-prs").decode() not in markdown.out
    assert f"`core/Secret/{ns}/db`" in markdown.out


def test_a_preview_of_the_base_itself_changes_nothing_and_an_unknown_revision_is_named(scenario: Scenario) -> None:
    head = _two_stacks(scenario)

    same = scenario.run("preview", "--revision", head, "--base", head)
    unknown = scenario.run("preview", "--revision", "no-such-branch")

    assert same.code == 0 and "no change" in same.out, same.out + same.err
    assert unknown.code == 2 and "revision 'no-such-branch' not found" in unknown.err
