"""What Git no longer has is pruned, what Git still wants never is, and nobody else's objects are taken."""

from __future__ import annotations

import pytest

from scenario import Scenario, annotations_of, configmap, labels_of

pytestmark = pytest.mark.cluster


def _uid(obj: dict | None) -> str:
    assert obj is not None, "object is gone"
    return obj["metadata"]["uid"]


def test_an_object_removed_from_git_is_pruned(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("app", [configmap("keep", ns, {"a": "1"}), configmap("drop", ns, {"b": "2"})])
    scenario.commit("two")
    scenario.run("sync")
    scenario.stack("app", [configmap("keep", ns, {"a": "1"})])
    scenario.commit("one")

    plan = scenario.run("plan")
    sync = scenario.run("sync")

    assert "- app: core/ConfigMap/" in plan.out and "/drop" in plan.out, plan.out
    assert sync.code == 1
    assert scenario.live("configmap", "drop") is None and scenario.live("configmap", "keep") is not None


@pytest.mark.parametrize("direction", ["to a dependent stack", "to a stack it depends on"])
def test_an_object_moved_between_stacks_keeps_its_uid_and_changes_owner(scenario: Scenario, direction: str) -> None:
    ns = scenario.namespace
    first, second = ("a", "b") if direction == "to a dependent stack" else ("b", "a")
    scenario.stack("a", [configmap("anchor-a", ns, {"x": "1"})])
    scenario.stack("b", [configmap("anchor-b", ns, {"x": "1"})], depends_on=("a",))
    scenario.stack(first, [configmap(f"anchor-{first}", ns, {"x": "1"}), configmap("moving", ns, {"v": "1"})],
                   depends_on=("a",) if first == "b" else ())
    scenario.commit("moving lives in the first stack")
    assert scenario.run("sync").code == 1
    uid = _uid(scenario.live("configmap", "moving"))
    scenario.stack(first, [configmap(f"anchor-{first}", ns, {"x": "1"})], depends_on=("a",) if first == "b" else ())
    scenario.stack(second, [configmap(f"anchor-{second}", ns, {"x": "1"}), configmap("moving", ns, {"v": "1"})],
                   depends_on=("a",) if second == "b" else ())
    scenario.commit("moving goes to the second stack")

    plan = scenario.run("plan")
    sync = scenario.run("sync")

    assert not [line for line in plan.out.splitlines() if line.strip().startswith("- ") and "moving" in line], plan.out
    assert sync.code == 1, sync.out + sync.err
    live = scenario.live("configmap", "moving")
    assert _uid(live) == uid
    assert labels_of(live)["reconciler.healthflow.io/owner"] == f"{scenario.name}.{second}"
    status = scenario.run("sync", "-o", "json")
    assert status.code == 0 and _uid(scenario.live("configmap", "moving")) == uid


def test_an_object_moved_between_stacks_is_pruned_later_by_its_new_owner(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("a", [configmap("moving", ns, {"v": "1"}), configmap("anchor", ns, {"x": "1"})])
    scenario.stack("b", [configmap("other", ns, {"x": "1"})], depends_on=("a",))
    scenario.commit("in a")
    scenario.run("sync")
    scenario.stack("a", [configmap("anchor", ns, {"x": "1"})])
    scenario.stack("b", [configmap("other", ns, {"x": "1"}), configmap("moving", ns, {"v": "1"})], depends_on=("a",))
    scenario.commit("to b")
    scenario.run("sync")
    scenario.stack("b", [configmap("other", ns, {"x": "1"})], depends_on=("a",))
    scenario.commit("gone from Git")

    sync = scenario.run("sync")

    assert sync.code == 1
    assert scenario.live("configmap", "moving") is None


def test_the_same_object_in_two_stacks_is_an_error_naming_both_before_anything_is_applied(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("a", [configmap("shared", ns, {"v": "a"}), configmap("only-a", ns, {"v": "1"})])
    scenario.stack("b", [configmap("shared", ns, {"v": "b"})])
    scenario.commit("shared twice")

    plan = scenario.run("plan")
    sync = scenario.run("sync")

    for run in (plan, sync):
        assert run.code == 2
        assert "core/ConfigMap/" in run.out and "stack 'a' (stacks/a/objects.yaml)" in run.out, run.out
        assert "stack 'b' (stacks/b/objects.yaml)" in run.out
    assert scenario.live("configmap", "shared") is None and scenario.live("configmap", "only-a") is None


def other_environment_owning_shared(scenario: Scenario, tmp_path) -> Scenario:
    """A second environment on the same cluster that has applied ConfigMap `shared` in the test's namespace."""
    other = Scenario(tmp_path / "other", scenario.namespace, scenario.kubeconfig)
    other.name = f"{scenario.namespace[:44]}-o"
    other.stack("theirs", [configmap("shared", scenario.namespace, {"owner": "other"})])
    other.commit("the other environment's object")
    assert other.run("sync").code == 1
    return other


def test_an_object_owned_by_another_environment_is_never_taken_over(scenario: Scenario, tmp_path) -> None:
    ns = scenario.namespace
    other = other_environment_owning_shared(scenario, tmp_path)
    scenario.stack("mine", [configmap("shared", ns, {"owner": "me"}), configmap("mine-only", ns, {"v": "1"})])
    scenario.commit("same object here")

    sync = scenario.run("sync")

    assert sync.code == 2
    assert f"owned by environment '{other.name}/theirs'" in sync.out and "allowAdoption" in sync.out, sync.out
    live = scenario.live("configmap", "shared")
    assert live["data"] == {"owner": "other"}
    assert annotations_of(live)["reconciler.healthflow.io/owner"] == f"{other.name}/theirs"
    assert scenario.live("configmap", "mine-only") is None  # the stack applied nothing
    assert other.run("sync").code == 0  # and the owner sees no drift


def test_a_stack_that_allows_adoption_takes_over_another_environments_object(scenario: Scenario, tmp_path) -> None:
    ns = scenario.namespace
    other_environment_owning_shared(scenario, tmp_path)
    scenario.stack("mine", [configmap("shared", ns, {"owner": "me"})], allowAdoption=True)
    scenario.write_env(correctDrift=True)
    scenario.commit("adopt it")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out
    live = scenario.live("configmap", "shared")
    assert live["data"] == {"owner": "me"}
    assert labels_of(live)["reconciler.healthflow.io/owner"] == f"{scenario.name}.mine"


def test_an_object_made_by_hand_is_adopted_when_git_declares_it(scenario: Scenario) -> None:
    scenario.kubectl("-n", scenario.namespace, "create", "configmap", "handmade", "--from-literal=a=1")
    uid = _uid(scenario.live("configmap", "handmade"))
    scenario.stack("app", [configmap("handmade", scenario.namespace, {"a": "2"})])
    scenario.write_env(correctDrift=True)
    scenario.commit("declare it")

    assert scenario.run("sync").code == 1

    live = scenario.live("configmap", "handmade")
    assert _uid(live) == uid and live["data"] == {"a": "2"}


def test_an_object_git_still_wants_is_never_pruned_while_another_stack_fails_to_render(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("a", [configmap("moving", ns, {"v": "1"}), configmap("anchor", ns, {"x": "1"})])
    scenario.stack("b", [configmap("other", ns, {"x": "1"})])
    scenario.commit("in a")
    scenario.run("sync")
    scenario.stack("a", [configmap("anchor", ns, {"x": "1"})])
    scenario.stack("b", [configmap("other", ns, {"x": "1"}), configmap("moving", ns, {"v": "1"})])
    scenario.repo.write("stacks/b/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [not, a, map\n")
    scenario.repo.write("stacks/b/kustomization.yaml", {"resources": ["objects.yaml", "broken.yaml"]})
    scenario.commit("moved to b, but b does not render")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    stacks = {s["stack"]: s for s in sync.json["stacks"]}
    assert stacks["b"]["state"] == "failed"
    assert "prune postponed" in stacks["a"]["reason"]
    assert scenario.live("configmap", "moving") is not None


def test_namespaces_are_not_pruned_without_opt_in(scenario: Scenario) -> None:
    extra = f"{scenario.namespace}-x"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": extra}}
    scenario.stack("app", [namespace, configmap("in-extra", extra, {"a": "1"})])
    scenario.commit("a namespace")
    scenario.run("sync")
    try:
        scenario.stack("app", [configmap("settings", scenario.namespace, {"a": "1"})])
        scenario.commit("namespace removed from Git")

        sync = scenario.run("sync", "-o", "json")

        assert "pruneNamespaces" in sync.json["stacks"][0]["reason"]
        assert scenario.live("namespace", extra, namespace=None)["status"]["phase"] == "Active"
        assert scenario.live("configmap", "in-extra", namespace=extra) is None
    finally:
        scenario.kubectl("delete", "namespace", extra, "--wait=false", check=False)


def test_an_object_annotated_prune_disabled_survives_its_removal_from_git(scenario: Scenario) -> None:
    ns = scenario.namespace
    survivor = configmap("survivor", ns, {"a": "1"}, annotations={"reconciler.healthflow.io/prune": "disabled"})
    scenario.stack("app", [configmap("keep", ns, {"a": "1"}), survivor])
    scenario.commit("a survivor")
    scenario.run("sync")
    scenario.stack("app", [configmap("keep", ns, {"a": "1"})])
    scenario.commit("survivor removed from Git")

    sync = scenario.run("sync", "-o", "json")
    again = scenario.run("sync", "-o", "json")

    assert "prune: disabled, left in place" in sync.json["stacks"][0]["reason"]
    assert scenario.live("configmap", "survivor") is not None
    assert again.code == 0 and not [c for c in again.json["stacks"][0]["changes"] if c["action"] == "prune"]


def test_a_stack_removed_from_the_environment_has_its_objects_pruned(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("app", [configmap("stays", ns, {"a": "1"})])
    scenario.stack("extra", [configmap("extra-1", ns, {"b": "1"}), configmap("extra-2", ns, {"b": "2"})])
    scenario.commit("two stacks")
    assert scenario.run("sync").code == 1
    del scenario.stacks["extra"]
    scenario.write_env()

    plan = scenario.run("plan")
    sync = scenario.run("sync")

    assert plan.code == 1 and "- extra: core/ConfigMap/" in plan.out and "/extra-2" in plan.out, plan.out
    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "extra-1") is None and scenario.live("configmap", "extra-2") is None
    assert scenario.live("configmap", "stays") is not None
    inventory = scenario.live("configmap", f"reconciler-{scenario.name}", namespace="healthflow-system")
    assert "stack.extra.json" not in inventory["data"]
    assert scenario.run("sync").code == 0


def test_an_object_moved_out_of_a_removed_stack_is_handed_over_not_pruned(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("app", [configmap("stays", ns, {"a": "1"})])
    scenario.stack("extra", [configmap("moving", ns, {"v": "1"}), configmap("goes", ns, {"v": "1"})])
    scenario.commit("two stacks")
    assert scenario.run("sync").code == 1
    uid = _uid(scenario.live("configmap", "moving"))
    del scenario.stacks["extra"]
    scenario.stack("app", [configmap("stays", ns, {"a": "1"}), configmap("moving", ns, {"v": "1"})])
    scenario.commit("moving goes to app, extra is gone")

    assert scenario.run("sync").code == 1

    live = scenario.live("configmap", "moving")
    assert _uid(live) == uid
    assert labels_of(live)["reconciler.healthflow.io/owner"] == f"{scenario.name}.app"
    assert scenario.live("configmap", "goes") is None
